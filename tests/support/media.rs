//! Test media: real JPEGs from ffmpeg, numbered JPEG frames of any size, solid-colour
//! PNGs and JPEGs, PNGs read back as RGB, and byte comparisons that do not print megabytes.

use super::multipart::find;

/// A real JPEG from ffmpeg whose EXIF APP1 segment holds a whole thumbnail JPEG, EOI and
/// all: a splitter that cuts at the first `FF D9` breaks it.
pub const EXIF_JPEG: &[u8] = include_bytes!("../data/mjpeg/exif.jpg");
pub const PROGRESSIVE_JPEG: &[u8] = include_bytes!("../data/mjpeg/progressive.jpg");
pub const RESTART_JPEG: &[u8] = include_bytes!("../data/mjpeg/restart.jpg");

/// Prefix of the comment that numbers a test frame.
const FRAME_TAG: &[u8] = b"mixreplace test frame ";

/// A real JPEG (the EXIF one) numbered `id` in a COM segment right after SOI, padded with
/// further COM segments to at least `size` bytes: every frame is identifiable and any
/// size, and stays a JPEG a decoder accepts.
pub fn frame(id: u32, size: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let comment = |out: &mut Vec<u8>, text: &[u8]| {
        out.extend_from_slice(&[0xFF, 0xFE]);
        let length = u16::try_from(text.len() + 2).expect("a COM segment under 64 KiB");
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(text);
    };
    comment(&mut out, &[FRAME_TAG, format!("{id:08}").as_bytes()].concat());
    let rest = &EXIF_JPEG[2..];
    while out.len() + rest.len() < size {
        let pad = (size - out.len() - rest.len()).saturating_sub(4).clamp(1, 65_000);
        comment(&mut out, &vec![b'.'; pad]);
    }
    out.extend_from_slice(rest);
    out
}

/// The number of a frame made by [`frame`].
pub fn frame_id(body: &[u8]) -> u32 {
    let at = find(body, FRAME_TAG).expect("a numbered frame") + FRAME_TAG.len();
    let digits = std::str::from_utf8(&body[at..at + 8]).expect("ASCII digits");
    digits.parse().expect("a frame number")
}

/// A `width`×`height` PNG of one colour.
pub fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("a PNG header");
    let pixels: Vec<u8> = rgb
        .iter()
        .copied()
        .cycle()
        .take((width * height * 3) as usize)
        .collect();
    writer.write_image_data(&pixels).expect("PNG pixels");
    writer.finish().expect("a whole PNG");
    out
}

/// A `width`×`height` JPEG of one colour (quality 90: the colour comes back within a
/// few levels).
pub fn solid_jpeg(width: u16, height: u16, rgb: [u8; 3]) -> Vec<u8> {
    let pixels: Vec<u8> = rgb
        .iter()
        .copied()
        .cycle()
        .take(usize::from(width) * usize::from(height) * 3)
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("a JPEG");
    out
}

/// An image's pixels: `width` × `height`, three bytes (R, G, B) each, row by row.
#[derive(Debug)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// A PNG (a screenshot, ffmpeg's output) of any colour type, alpha dropped.
    pub fn from_png(png: &[u8]) -> Rgb {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buffer = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
        let info = reader.next_frame(&mut buffer).expect("PNG pixels");
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("a PNG in {other:?}"),
        };
        let pixels = buffer[..info.buffer_size()]
            .chunks_exact(channels)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
        Rgb {
            width: info.width as usize,
            height: info.height as usize,
            pixels,
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }

    /// How many pixels are `rgb`, give or take `tolerance` in each channel.
    pub fn count(&self, rgb: [u8; 3], tolerance: u8) -> usize {
        self.pixels
            .chunks_exact(3)
            .filter(|px| {
                px.iter()
                    .zip(rgb)
                    .all(|(&got, want)| got.abs_diff(want) <= tolerance)
            })
            .count()
    }
}

/// Width and height from a whole baseline JPEG's SOF0 segment; `None` for anything
/// else (no SOI, no EOI, no SOF0).
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) || !jpeg.ends_with(&[0xFF, 0xD9]) {
        return None;
    }
    let at = find(jpeg, &[0xFF, 0xC0])?;
    let sof = jpeg.get(at + 5..at + 9)?;
    let height = u16::from_be_bytes([sof[0], sof[1]]);
    let width = u16::from_be_bytes([sof[2], sof[3]]);
    Some((width, height))
}

/// A short stand-in for bytes in assertions: their length and FNV-1a hash.
pub fn sum(bytes: &[u8]) -> (usize, u64) {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (bytes.len(), hash)
}

/// Compares bytes without printing them all: a mismatch shows the lengths and where
/// they first differ.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let window = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(16)..(at + 16).min(b.len())]).into_owned()
        };
        panic!(
            "{what}: {} bytes, want {}; first difference at {at}: {:?} vs {:?}",
            got.len(),
            want.len(),
            window(got),
            window(want)
        );
    }
}
