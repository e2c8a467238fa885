//! Browsers see the newest frame by default (issue 9): Chromium shows a part of a
//! `multipart/x-mixed-replace` image only once the next part's headers arrive, so a plain
//! `<img src=…/live>` used to show each live frame one frame late (the first one not at
//! all until the second came). Its image requests (an `Accept` listing image types
//! first) now get the next part's header block ahead, without a URL switch.
//!
//! One page, two images of the same live stream: `/view`'s own (the plain URL) and one
//! added with the switches turned off (`?advance_headers=0&dual_final_frames=0`, the old
//! behaviour). Solid-colour frames are fed one at a time; the page reads each image's
//! colour through a canvas. The plain one shows each frame as it arrives (the time is
//! printed); at the same moment the old one shows the frame before: compared by
//! content, not by time.

use std::time::{Duration, Instant};

use crate::support::browser::Browser;
use crate::support::json;
use crate::support::media::solid_jpeg;
use crate::support::server::Server;
use crate::support::tools::{TOOL_LIMIT, require_tool};

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 255, 0];
/// How long a frame may take to show before the test gives up (a hang guard).
const SHOW_TIMEOUT: Duration = Duration::from_secs(10);

/// Each image's colour as JSON, `none` before its first frame shows.
const COLOURS: &str = "(() => {
  const colour = (img) => {
    if (!img || !img.naturalWidth) return 'none';
    const c = document.createElement('canvas');
    c.width = c.height = 1;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0, 1, 1);
    const [r, gr, b] = g.getImageData(0, 0, 1, 1).data;
    return r > 200 && gr < 60 && b < 60 ? 'red' : b > 200 && r < 60 && gr < 60 ? 'blue'
      : gr > 200 && r < 60 && b < 60 ? 'green' : 'other';
  };
  return colour(document.querySelector('figure img')) + ' ' + colour(document.getElementById('late'));
})()";

#[test]
fn chromium_shows_each_live_frame_as_it_arrives_in_a_plain_img() {
    let Some(chromium) = require_tool(&["chromium", "chromium-browser", "google-chrome"], "chromium") else {
        return;
    };
    // refresh=0: a heartbeat would show the one-frame-late image the current frame.
    let mut server = Server::start_live(&["--stream", "/cam=stdin,refresh=0"]);
    let mut browser = Browser::launch(&chromium, TOOL_LIMIT);
    let page = browser.open(&format!("http://{}/view", server.addr()), 400, 300);
    // The view page's image, then one with the switches off, as before this change. The
    // image's request may come (Chromium's preload scanner) before the parser made the
    // body: the late image waits for the page's own to be in the document.
    server.wait_viewers("/cam", 1);
    let parsed = Instant::now();
    while browser.evaluate(&page, "!!(document.body && document.querySelector('figure img'))")
        != json::Value::Bool(true)
    {
        assert!(parsed.elapsed() < SHOW_TIMEOUT, "/view was never parsed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let late = "document.body.insertAdjacentHTML('beforeend', \
                '<img id=late src=\"/cam?advance_headers=0&dual_final_frames=0\">')";
    browser.evaluate(&page, late);
    server.wait_viewers("/cam", 2);

    let mut colours = || {
        let value = browser.evaluate(&page, COLOURS);
        let text = value.as_str().expect("a string").to_owned();
        let (plain, late) = text.split_once(' ').expect("two colours");
        (plain.to_owned(), late.to_owned())
    };
    for (rgb, name, before) in [
        (RED, "red", "none"),
        (BLUE, "blue", "red"),
        (GREEN, "green", "blue"),
    ] {
        let fed = Instant::now();
        server.feed(&solid_jpeg(64, 48, rgb));
        let (shown_after, late) = loop {
            let (plain, late) = colours();
            if plain == name {
                break (fed.elapsed(), late);
            }
            assert!(
                fed.elapsed() < SHOW_TIMEOUT,
                "{name} never showed: {plain} {late}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        eprintln!(
            "{name}: the plain <img> showed it {} ms after it was fed; the one with the switches off showed {late}",
            shown_after.as_millis()
        );
        // The old behaviour at that moment: one frame behind.
        assert_eq!(late, before, "{name}");
    }
    browser.close(page);
}
