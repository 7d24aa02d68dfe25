//! The framer on arbitrary bytes and limits: it never panics, never consumes
//! more than it was given, and the lines it returns hold no `\n` and respect
//! the limit. Draining a buffer line by line ends in `Incomplete` or `TooLong`.
#![no_main]

use atserver::protocol::frame::{Frame, next_line, trim_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max, mut buf)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    loop {
        let (frame, used) = next_line(buf, max);
        assert!(used <= buf.len());
        match frame {
            Frame::Line(line) => {
                assert!(line.len() <= max);
                assert!(!line.contains(&b'\n'));
                assert_eq!(buf[used - 1], b'\n');
                let t = trim_line(line);
                assert!(t.len() <= line.len());
                buf = &buf[used..];
            }
            Frame::Incomplete => {
                assert!(!buf.contains(&b'\n'));
                break;
            }
            Frame::TooLong => break,
        }
    }
});
