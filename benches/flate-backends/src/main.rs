// Compress + inflate a ~1 KiB chat JSON message the way roomcast does
// (raw deflate, sync flush, reset per message), timed per message.
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::time::Instant;

fn main() {
    let words = ["the", "room", "message", "hello", "chat", "server", "anyone", "here", "today", "works", "again", "thanks"];
    let mut x = 12345u32;
    let mut text = String::from("{\"type\":\"message\",\"data\":\"user12:");
    while text.len() < 1000 {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        text.push(' ');
        text.push_str(words[(x >> 16) as usize % words.len()]);
    }
    text.push_str("\"}");
    let input = text.as_bytes();
    for level in [1u32, 6] {
        let mut c = Compress::new(Compression::new(level), false);
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(4096);
        let mut back = Vec::with_capacity(4096);
        let n = 200_000;
        let t = Instant::now();
        let mut size = 0;
        for _ in 0..n {
            out.clear();
            c.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
            c.reset();
            size = out.len();
        }
        let ct = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            back.clear();
            d.decompress_vec(&out, &mut back, FlushDecompress::Sync).unwrap();
            d.reset(false);
        }
        let dt = t.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(back, input);
        println!("level {level}: {} -> {size} bytes, compress {ct:.0} ns, inflate {dt:.0} ns", input.len());
    }
}
