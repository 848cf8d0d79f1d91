use super::*;
use crate::config::CompressionConfig;
use crate::metrics::Declined;

/// A server's deflate with `max_memory` for inbound context takeover.
fn server(max_memory: usize) -> Arc<Deflate> {
    let config = CompressionConfig {
        max_memory,
        ..CompressionConfig::default()
    };
    Deflate::new(&config, &Metrics::new()).unwrap()
}

fn answer(d: &Arc<Deflate>, offer: &str) -> (Agreed, String, Option<Takeover>) {
    match d.negotiate(std::iter::once(offer)) {
        Answer::Accepted(a, answer, takeover) => (a, answer, takeover),
        other => panic!("{offer:?}: {other:?}"),
    }
}

fn accepted(offer: &str) -> (Agreed, String) {
    let (a, answer, takeover) = answer(&server(0), offer);
    assert!(takeover.is_none(), "no budget, no takeover");
    (a, answer)
}

fn declined(offer: &str) -> Declined {
    match negotiate(std::iter::once(offer)) {
        Negotiation::Declined(why) => why,
        other => panic!("{offer:?}: {other:?}"),
    }
}

#[test]
fn offers_are_answered_as_rfc_7692_says() {
    // Chromium's offer.
    let (a, answer) = accepted("permessage-deflate; client_max_window_bits");
    assert_eq!(a.window_bits, 15);
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    // A bound on the server's window is answered with the window used.
    let (a, answer) =
        accepted("permessage-deflate; server_max_window_bits=\"10\"; server_no_context_takeover");
    assert_eq!(a.window_bits, 10);
    assert!(answer.ends_with("; server_max_window_bits=10"), "{answer}");
    // The first offer the server takes wins; other extensions are skipped.
    let (a, _) = accepted("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9");
    assert_eq!(a.window_bits, 9);
    assert_eq!(
        negotiate(std::iter::once("x-webkit-deflate-frame")),
        Negotiation::None
    );
    assert_eq!(negotiate(std::iter::empty()), Negotiation::None);
}

#[test]
fn inbound_context_takeover_is_given_within_the_budget_only() {
    let d = server(2 * takeover_cost(15));
    let plain = "permessage-deflate; server_no_context_takeover";
    let (_, a, first) = answer(&d, "permessage-deflate");
    assert_eq!(a, plain, "no client_no_context_takeover: it may take over");
    let (_, a, second) = answer(&d, "permessage-deflate; client_max_window_bits=10");
    assert_eq!(a, format!("{plain}; client_max_window_bits=10"));
    // Two 15-bit windows' worth, less a 10-bit one: no room for another.
    let (_, a, third) = answer(&d, "permessage-deflate");
    assert!(
        third.is_none() && a.ends_with("; client_no_context_takeover"),
        "{a}"
    );
    // A client that asks for none gets none, whatever the budget.
    drop(first);
    let (_, a, asked) = answer(&d, "permessage-deflate; client_no_context_takeover");
    assert!(
        asked.is_none() && a.ends_with("; client_no_context_takeover"),
        "{a}"
    );
    // What was given back can be given again.
    let (_, _, again) = answer(&d, "permessage-deflate");
    assert!(again.is_some());
    assert_eq!(
        d.reserved.load(Ordering::Relaxed),
        takeover_cost(10) + takeover_cost(15)
    );
    drop((second, again));
    assert_eq!(d.reserved.load(Ordering::Relaxed), 0);
}

#[test]
fn a_taken_over_context_reads_messages_that_refer_to_earlier_ones() {
    let d = server(1 << 20);
    let (_, _, takeover) = answer(&d, "permessage-deflate");
    let mut takeover = takeover.unwrap();
    // The client's side: one stream, sync-flushed per message, never reset.
    let mut c = Compress::new(Compression::new(6), false);
    let mut message = |text: &[u8]| {
        let mut out = Vec::with_capacity(4096);
        c.compress_vec(text, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - TAIL.len());
        out
    };
    let line = b"the same chat line, again and again, and again".repeat(4);
    let (one, two) = (message(&line), message(&line));
    assert!(two.len() < one.len() / 2, "the second refers to the first");
    assert_eq!(takeover.inflate(&one, 1 << 20).unwrap(), line);
    assert_eq!(takeover.inflate(&two, 1 << 20).unwrap(), line);
    // Without the first message's window, the second is not readable.
    assert_ne!(inflate(&two, 1 << 20).ok(), Some(line.clone()));
}

#[test]
fn malformed_and_unsupported_offers_are_declined() {
    for bad in [
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; unknown",
    ] {
        assert_eq!(declined(bad), Declined::Invalid, "{bad}");
    }
    assert_eq!(
        declined("permessage-deflate; server_max_window_bits=8"),
        Declined::Unsupported
    );
}

#[test]
fn a_message_survives_the_trip_at_every_window() {
    let text = "{\"type\":\"message\",\"data\":\"hello hello hello\"}".repeat(50);
    for bits in 9..=15 {
        let deflated = compress(&[text.as_bytes()], 6, bits);
        assert!(
            deflated.len() < text.len() / 4,
            "{bits}: {}",
            deflated.len()
        );
        let mut d = Decompress::new_with_window_bits(false, bits);
        assert_eq!(
            inflate_with(&mut d, &deflated, 1 << 20).unwrap(),
            text.as_bytes()
        );
        assert_eq!(inflate(&deflated, 1 << 20).unwrap(), text.as_bytes());
    }
    // Parts compress as one message.
    let parts = compress(&[b"4", text.as_bytes()], 6, 15);
    assert_eq!(
        inflate(&parts, 1 << 20).unwrap(),
        [b"4", text.as_bytes()].concat()
    );
    // An empty message is one byte, and inflates to nothing.
    assert_eq!(compress(&[b""], 6, 15), [0x00]);
    assert_eq!(inflate(&[0x00], 10).unwrap(), b"");
}

#[test]
fn inflating_stops_at_the_limit_and_refuses_garbage() {
    let zeros = vec![0u8; 4 << 20];
    let bomb = compress(&[&zeros], 9, 15);
    assert!(bomb.len() < 8 << 10, "{}", bomb.len());
    assert_eq!(inflate(&bomb, 1 << 20), Err(InflateError::TooLarge));
    assert_eq!(inflate(&bomb, 4 << 20).unwrap().len(), 4 << 20);
    assert_eq!(
        inflate(&[0xff, 0xff, 0xff, 0x00], 1 << 20),
        Err(InflateError::Corrupt)
    );
    // The thread's inflater is fine after a failure.
    let ok = compress(&[b"after"], 6, 15);
    assert_eq!(inflate(&ok, 100).unwrap(), b"after");
}
