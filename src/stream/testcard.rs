//! `testcard`: real JPEG video made in the process, for testing viewers, decoders and
//! recorders without a camera and without ffmpeg.
//!
//! A frame, `width` × `height`: colour bars (75% white, yellow, cyan, green, magenta, red,
//! blue) over the top two thirds; below them a grey ramp, black to white, and a dark strip
//! where a white box moves one width to the right per loop (wrapping at the edge); in the
//! middle, on a black box, the frame's number in the loop in white, zero-padded to the
//! digits of the last one, in a 5×7 dot font whose dots are squares of about a 21st of the
//! height (at least one pixel): large enough to read in a screenshot.
//!
//! Invariants:
//! - Every frame is drawn and encoded once, at start-up ([`encode_frames`]), as a baseline
//!   JPEG by `jpeg-encoder` (4:2:0 chroma below quality 90, 4:4:4 from 90); the stream
//!   plays them as a scripted loop ([`Stream::numbered_loop`](crate::stream::Stream)), so
//!   serving a testcard costs what serving any scripted stream of that size costs.
//! - Start-up is bounded: at most [`MAX_PIXELS`] pixels are encoded in all (the encoder
//!   works per pixel), and the encoded frames share a script's caps, [`MAX_PARTS`]
//!   frames and [`MAX_TOTAL_BYTES`] in all, checked as each frame is encoded. One RGB
//!   buffer is drawn into and reused.
//! - The picture shows the frame's number in the loop; the part's `X-Frame` counts on
//!   across loops for each client, so the picture shows `X-Frame` mod `frames`.

use jpeg_encoder::{ColorType, Encoder};

use crate::clock::Micros;
use crate::stream::script::{MAX_PARTS, MAX_TOTAL_BYTES};

/// Sides from 16 pixels (a JPEG block or two) to 4096 (past 4K UHD).
pub const MIN_SIDE: u16 = 16;
pub const MAX_SIDE: u16 = 4096;
/// Most pixels encoded at start-up, all frames together: 72 frames of 1080p, 650 of
/// 640×360. The encoder takes 30 to 60 million pixels a second (release build, one core),
/// so start-up stays within a few seconds.
pub const MAX_PIXELS: u64 = 150_000_000;
/// The default card: 640×360 at 10 frames a second, quality 80, three seconds' worth.
pub const DEFAULT_SIZE: (u16, u16) = (640, 360);
pub const DEFAULT_FPS: f64 = 10.0;
pub const DEFAULT_QUALITY: u8 = 80;
const DEFAULT_SECONDS: f64 = 3.0;
// Any size allows a loop of several frames.
const _: () = assert!(MAX_PIXELS / (MAX_SIDE as u64 * MAX_SIDE as u64) >= 8);

/// What a `testcard` stream draws (`--stream PATH=testcard[,size=WxH][,fps=N]…`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestcardConfig {
    pub width: u16,
    pub height: u16,
    /// Frames a second, within the `fps` range of every kind (checked by the caller).
    pub fps: f64,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// Frames in the loop, 1 to [`MAX_PARTS`], within [`MAX_PIXELS`].
    pub frames: u32,
}

impl TestcardConfig {
    /// Checks the options given (`None`: the default) and fills in the rest; errors are
    /// one line each, naming the option and its range.
    pub fn new(
        size: Option<&str>,
        fps: f64,
        quality: Option<u64>,
        frames: Option<u64>,
    ) -> Result<Self, String> {
        let (width, height) = size.map_or(Ok(DEFAULT_SIZE), parse_size)?;
        let quality = match quality {
            None => DEFAULT_QUALITY,
            Some(q @ 1..=100) => q as u8,
            Some(q) => return Err(format!("testcard: quality must be from 1 to 100, got {q}")),
        };
        // At least 8: a frame of the largest size fits several times over (see above).
        let most = (MAX_PIXELS / (u64::from(width) * u64::from(height))).min(MAX_PARTS as u64);
        let frames = match frames {
            // Three seconds' worth, or what the caps allow.
            None => ((fps * DEFAULT_SECONDS).round() as u64).clamp(1, most),
            Some(n) if (1..=most).contains(&n) => n,
            Some(n) => {
                return Err(format!(
                    "testcard: frames must be from 1 to {most} at {width}x{height} \
                     (at most {MAX_PARTS} frames and {MAX_PIXELS} pixels in all), got {n}"
                ));
            }
        };
        Ok(TestcardConfig {
            width,
            height,
            fps,
            quality,
            frames: frames as u32,
        })
    }

    /// The time from one frame to the next.
    pub fn interval(&self) -> Micros {
        (1e6 / self.fps).round() as Micros
    }
}

/// `WxH`, each side within [`MIN_SIDE`] to [`MAX_SIDE`].
fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let side = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|n| (MIN_SIDE..=MAX_SIDE).contains(n))
    };
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((side(w)?, side(h)?)));
    parsed.ok_or_else(|| {
        format!("testcard: size must be WIDTHxHEIGHT, each from {MIN_SIDE} to {MAX_SIDE}, got '{text}'")
    })
}

/// Draws and encodes every frame of the loop, in order; see the module header for the
/// caps checked on the way.
pub fn encode_frames(config: &TestcardConfig) -> Result<Vec<Vec<u8>>, String> {
    let mut card = Card::new(config);
    let mut frames = Vec::with_capacity(config.frames as usize);
    let mut total: u64 = 0;
    for index in 0..config.frames {
        card.draw(index);
        let mut jpeg = Vec::new();
        Encoder::new(&mut jpeg, config.quality)
            .encode(&card.rgb, config.width, config.height, ColorType::Rgb)
            .map_err(|e| format!("testcard: encoding frame {index}: {e}"))?;
        total += jpeg.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(format!(
                "testcard: the frames add up to more than {} MiB, the most a stream may hold in \
                 memory (fewer frames, a smaller size or a lower quality)",
                MAX_TOTAL_BYTES >> 20
            ));
        }
        frames.push(jpeg);
    }
    Ok(frames)
}

const BLACK: [u8; 3] = [0, 0, 0];
const WHITE: [u8; 3] = [255, 255, 255];
const DARK: [u8; 3] = [32, 32, 32];
/// The seven bars at 75%, left to right.
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

/// The digits 0 to 9, seven rows of five dots each, the leftmost dot in bit 4.
const FONT: [[u8; 7]; 10] = [
    [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
    [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
    [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
    [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
    [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
    [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
    [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
    [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
    [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
    [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
];
/// A digit's cell in dots: five wide and a space, seven high.
const CELL_W: usize = 6;
const GLYPH_H: usize = 7;

/// Where the number goes: its top-left dot, the dot size and the digit count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NumberBox {
    x: usize,
    y: usize,
    dot: usize,
    digits: usize,
}

impl NumberBox {
    /// Centred; dots as large as fit a 21st of the height and 90% of the width.
    fn of(width: usize, height: usize, frames: u32) -> NumberBox {
        let digits = (frames - 1).max(1).ilog10() as usize + 1;
        // The black box is one dot wider than the digits on each side: the last digit's
        // space and one more column, and a row above and below.
        let (box_w, box_h) = (digits * CELL_W + 1, GLYPH_H + 2);
        let dot = (height / (3 * box_h)).min(width * 9 / 10 / box_w).max(1);
        NumberBox {
            x: width.saturating_sub(box_w * dot) / 2 + dot,
            y: height.saturating_sub(box_h * dot) / 2 + dot,
            dot,
            digits,
        }
    }
}

/// One frame's pixels, redrawn for each frame.
struct Card {
    width: usize,
    height: usize,
    frames: u32,
    rgb: Vec<u8>,
}

impl Card {
    fn new(config: &TestcardConfig) -> Card {
        let (width, height) = (usize::from(config.width), usize::from(config.height));
        Card {
            width,
            height,
            frames: config.frames,
            rgb: vec![0; width * height * 3],
        }
    }

    fn draw(&mut self, index: u32) {
        let (w, h) = (self.width, self.height);
        let bars_end = h * 2 / 3;
        let ramp_end = bars_end + (h - bars_end) / 2;
        // One row of each band, then copies of it: drawing costs little beside encoding.
        for x in 0..w {
            self.fill(x, 0, 1, 1, BARS[x * BARS.len() / w]);
            self.fill(x, bars_end, 1, 1, [(x * 255 / (w - 1)) as u8; 3]);
        }
        for (first, end) in [(0, bars_end), (bars_end, ramp_end)] {
            for row in first + 1..end {
                self.rgb
                    .copy_within(first * w * 3..(first + 1) * w * 3, row * w * 3);
            }
        }
        self.fill(0, ramp_end, w, h - ramp_end, DARK);
        // The box moves one width per loop; past the right edge it comes back on the left.
        let box_w = (w / 8).max(2);
        let left = index as usize * w / self.frames as usize;
        let on_right = box_w.min(w - left);
        self.fill(left, ramp_end, on_right, h - ramp_end, WHITE);
        self.fill(0, ramp_end, box_w - on_right, h - ramp_end, WHITE);
        self.number(index);
    }

    fn number(&mut self, index: u32) {
        let NumberBox { x, y, dot, digits } = NumberBox::of(self.width, self.height, self.frames);
        let box_w = (digits * CELL_W + 1) * dot;
        self.fill(x - dot, y - dot, box_w, (GLYPH_H + 2) * dot, BLACK);
        let text = format!("{index:0digits$}");
        for (i, digit) in text.bytes().enumerate() {
            let glyph = FONT[usize::from(digit - b'0')];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let left = x + (i * CELL_W + col) * dot;
                        self.fill(left, y + row * dot, dot, dot, WHITE);
                    }
                }
            }
        }
    }

    /// Paints a rectangle, clipped to the frame (a tiny card clips its number).
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        let (x_end, y_end) = ((x + w).min(self.width), (y + h).min(self.height));
        for row in y.min(y_end)..y_end {
            let start = (row * self.width + x.min(x_end)) * 3;
            let end = (row * self.width + x_end) * 3;
            for pixel in self.rgb[start..end].chunks_exact_mut(3) {
                pixel.copy_from_slice(&rgb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(size: &str, frames: u64) -> TestcardConfig {
        TestcardConfig::new(Some(size), 10.0, None, Some(frames)).unwrap()
    }

    fn pixel(card: &Card, x: usize, y: usize) -> [u8; 3] {
        let at = (y * card.width + x) * 3;
        [card.rgb[at], card.rgb[at + 1], card.rgb[at + 2]]
    }

    /// Reads the number back from the pixels: each dot's centre, white or not, matched
    /// against the font.
    fn read_number(card: &Card) -> String {
        let NumberBox { x, y, dot, digits } = NumberBox::of(card.width, card.height, card.frames);
        (0..digits)
            .map(|i| {
                let glyph: Vec<u8> = (0..GLYPH_H)
                    .map(|row| {
                        (0..5).fold(0, |bits, col| {
                            let (px, py) = (x + (i * CELL_W + col) * dot + dot / 2, y + row * dot + dot / 2);
                            bits << 1 | u8::from(pixel(card, px, py) == WHITE)
                        })
                    })
                    .collect();
                let digit = FONT.iter().position(|g| g[..] == glyph[..]).expect("a digit");
                char::from(b'0' + digit as u8)
            })
            .collect()
    }

    #[test]
    fn each_frame_shows_its_number_zero_padded() {
        let mut card = Card::new(&config("640x360", 120));
        for index in [0, 7, 42, 119] {
            card.draw(index);
            assert_eq!(read_number(&card), format!("{index:03}"));
        }
        assert_eq!(NumberBox::of(640, 360, 120).dot, 360 / 27);
        // One frame still shows one digit; a tiny card clips its number, never panics.
        let mut card = Card::new(&config("16x16", 1));
        card.draw(0);
        let mut card = Card::new(&config("32x32", 100_000));
        card.draw(99_999);
    }

    #[test]
    fn bars_ramp_and_a_box_that_moves_once_per_loop() {
        let mut card = Card::new(&config("70x30", 10));
        card.draw(0);
        assert_eq!(pixel(&card, 0, 0), BARS[0]);
        assert_eq!(pixel(&card, 69, 0), BARS[6]);
        assert_eq!(pixel(&card, 0, 20), BLACK);
        assert_eq!(pixel(&card, 69, 20), WHITE);
        let strip = |card: &Card| (0..70).map(|x| pixel(card, x, 29) == WHITE).collect::<Vec<_>>();
        let first = strip(&card);
        assert_eq!(first.iter().position(|&w| w), Some(0));
        card.draw(5);
        assert_eq!(strip(&card).iter().position(|&w| w), Some(35));
        // The last frame's box wraps: it is on both edges.
        card.draw(9);
        let last = strip(&card);
        assert!(last[0] && last[69] && !last[35], "{last:?}");
    }

    #[test]
    fn frames_are_baseline_jpegs() {
        let frames = encode_frames(&config("64x48", 3)).unwrap();
        assert_eq!(frames.len(), 3);
        for frame in &frames {
            assert!(frame.starts_with(&[0xFF, 0xD8]) && frame.ends_with(&[0xFF, 0xD9]));
            // SOF0: baseline DCT, 8 bits, 48 rows, 64 columns, 3 components.
            let sof = frame
                .windows(2)
                .position(|w| w == [0xFF, 0xC0])
                .expect("a baseline frame");
            assert_eq!(frame[sof + 4..sof + 10], [8, 0, 48, 0, 64, 3]);
        }
        assert_ne!(frames[0], frames[1]);
    }

    #[test]
    fn defaults_and_ranges() {
        let card = TestcardConfig::new(None, 10.0, None, None).unwrap();
        assert_eq!(
            (card.width, card.height, card.quality, card.frames),
            (640, 360, 80, 30)
        );
        assert_eq!(card.interval(), 100_000);
        let slow = TestcardConfig::new(None, 0.1, Some(100), None).unwrap();
        assert_eq!((slow.frames, slow.quality), (1, 100));
        assert_eq!(
            TestcardConfig::new(None, 30.0, None, None).unwrap().interval(),
            33_333
        );
        // The default shrinks to fit the pixel cap; an explicit count does not.
        let big = TestcardConfig::new(Some("4096x4096"), 1000.0, None, None).unwrap();
        assert_eq!(big.frames, 8);
        for (size, quality, frames, says) in [
            (Some("640"), None, None, "size must be WIDTHxHEIGHT"),
            (Some("15x100"), None, None, "each from 16 to 4096"),
            (Some("100x4097"), None, None, "got '100x4097'"),
            (Some("axb"), None, None, "size must be"),
            (None, Some(0), None, "quality must be from 1 to 100, got 0"),
            (None, Some(101), None, "quality must be from 1 to 100"),
            (None, None, Some(0), "frames must be from 1 to 651"),
            (Some("4096x4096"), None, Some(9), "frames must be from 1 to 8"),
            (
                Some("16x16"),
                None,
                Some(100_001),
                "frames must be from 1 to 100000",
            ),
        ] {
            let err = TestcardConfig::new(size, 10.0, quality, frames).unwrap_err();
            assert!(err.starts_with("testcard: ") && err.contains(says), "{err}");
            assert!(!err.contains('\n'));
        }
    }
}
