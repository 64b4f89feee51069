//! Hostile input (issue "multiraft-transport-quic", acceptance: a 1 GiB length is refused
//! without allocating; garbage never panics; a stream flood is capped; the receiver's RSS
//! rises by less than 64 MiB in each).

mod common;

use common::*;
use multiraft_core::NodeId;
use multiraft_transport_quic::config::DEFAULT_MAX_CONCURRENT_UNI_STREAMS;
use multiraft_transport_quic::frame::{self, FRAME_KIND_BATCH, FRAME_VERSION, FrameLimits};
use multiraft_transport_quic::tls::ALPN;
use multiraft_transport_quic::{CLOSE_PROTOCOL, QuicTransport};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const RSS_BUDGET: u64 = 64 << 20;

fn valid_client(ca: &multiraft_transport_quic::dev::DevCa) -> rustls::ClientConfig {
    client_crypto(
        &[ca.cert_der()],
        Some(ca.node(NodeId(1)).unwrap().identity()),
        ALPN,
    )
}

/// A honest batch still gets through: the server survived whatever came before.
async fn assert_still_serving(
    ca: &multiraft_transport_quic::dev::DevCa,
    t: &QuicTransport,
    rx: &mut tokio::sync::mpsc::Receiver<multiraft_core::MessageBatch>,
) {
    let addr = t.local_addr().unwrap();
    let (_o, _ep) = raw_attempt(
        valid_client(ca),
        addr,
        &name(3),
        &framed(&heartbeat_batch(1, 3, 42)),
        false,
    )
    .await;
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("still serving")
        .unwrap();
    assert_eq!(got, heartbeat_batch(1, 3, 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_declaring_1_gib_is_refused_without_allocating() {
    let ca = dev_ca();
    let (t, mut rx) = bind(3, ca.tls_config(NodeId(3)).unwrap(), &[]);
    let rss_before = rss_bytes();
    let mut bytes = vec![FRAME_VERSION, FRAME_KIND_BATCH, 0, 0];
    bytes.extend_from_slice(&(1u32 << 30).to_be_bytes());
    bytes.extend_from_slice(&[0xAB; 4096]);
    let (outcome, _ep) = raw_attempt(
        valid_client(&ca),
        t.local_addr().unwrap(),
        &name(3),
        &bytes,
        true,
    )
    .await;
    assert_eq!(app_code(&outcome), Some(CLOSE_PROTOCOL), "{outcome:?}");
    assert_eq!(t.stats().frames_rejected, 1);
    let grew = rss_bytes().saturating_sub(rss_before);
    assert!(grew < RSS_BUDGET, "RSS grew by {grew} bytes");
    assert!(rx.try_recv().is_err());
    assert_still_serving(&ca, &t, &mut rx).await;
    t.close();
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_frames_never_panic() {
    let ca = dev_ca();
    let (t, mut rx) = bind(3, ca.tls_config(NodeId(3)).unwrap(), &[]);
    let addr = t.local_addr().unwrap();
    let rss_before = rss_bytes();
    let mut seed = 0x5EED;
    for round in 0..24u64 {
        let len = (splitmix(&mut seed) % 4096) as usize + 1;
        // Some rounds declare more than they send: a truncated frame.
        let declared = if round % 4 == 0 { len + 100 } else { len };
        let mut bytes: Vec<u8> = (0..len).map(|_| splitmix(&mut seed) as u8).collect();
        if round % 2 == 0 {
            // A well-formed header in front of random payload reaches the decoder.
            let mut framed = vec![FRAME_VERSION, FRAME_KIND_BATCH, 0, 0];
            framed.extend_from_slice(&(declared as u32).to_be_bytes());
            framed.append(&mut bytes);
            bytes = framed;
        }
        let (outcome, _ep) = raw_attempt(valid_client(&ca), addr, &name(3), &bytes, true).await;
        // Random bytes fail a check, or end mid-frame (the stream is finished): either
        // way the server closes the connection.
        assert_eq!(
            app_code(&outcome),
            Some(CLOSE_PROTOCOL),
            "round {round}: {outcome:?}"
        );
    }
    assert!(rx.try_recv().is_err(), "garbage was delivered");
    assert!(t.stats().frames_rejected > 0);
    let grew = rss_bytes().saturating_sub(rss_before);
    assert!(grew < RSS_BUDGET, "RSS grew by {grew} bytes");
    assert_still_serving(&ca, &t, &mut rx).await;
    t.close();
}

/// A peer opening unidirectional streams as fast as it can is held to the configured
/// concurrency by QUIC flow control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_is_capped() {
    let ca = dev_ca();
    let (t, mut rx) = bind(3, ca.tls_config(NodeId(3)).unwrap(), &[]);
    let rss_before = rss_bytes();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(valid_client(&ca)).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint
        .connect(t.local_addr().unwrap(), &name(3))
        .unwrap()
        .await
        .unwrap();
    let mut open = Vec::new();
    loop {
        // Bounded: the stream that exceeds the limit never opens.
        match tokio::time::timeout(Duration::from_millis(300), conn.open_uni()).await {
            Ok(Ok(mut s)) => {
                // Half a header keeps the server's reader waiting on the stream.
                s.write_all(&[FRAME_VERSION, FRAME_KIND_BATCH])
                    .await
                    .unwrap();
                open.push(s);
                assert!(open.len() <= 64, "stream count not capped");
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => break,
        }
    }
    assert_eq!(open.len(), DEFAULT_MAX_CONCURRENT_UNI_STREAMS as usize);
    let grew = rss_bytes().saturating_sub(rss_before);
    assert!(grew < RSS_BUDGET, "RSS grew by {grew} bytes");
    drop(open);
    conn.close(0u32.into(), b"done");
    assert_still_serving(&ca, &t, &mut rx).await;
    t.close();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the decoder, and whatever it accepts re-encodes to a
    /// frame that decodes to the same batch. (Not byte-identical: postcard accepts
    /// non-canonical varints such as `80 00` for 0.)
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let limits = FrameLimits::default();
        if let Ok((batch, used)) = frame::decode_frame(&bytes, &limits) {
            let mut again = Vec::new();
            frame::encode(&batch, &limits, &mut again).unwrap();
            prop_assert!(again.len() <= used);
            let (decoded, _) = frame::decode_frame(&again, &limits).unwrap();
            prop_assert_eq!(decoded, batch);
        }
    }

    /// The same with a well-formed header, so the payload decoder and the validation see
    /// arbitrary input rather than failing at the header.
    #[test]
    fn arbitrary_payloads_never_panic_the_decoder(payload in proptest::collection::vec(any::<u8>(), 1..2048)) {
        let mut bytes = vec![FRAME_VERSION, FRAME_KIND_BATCH, 0, 0];
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let _ = frame::decode_frame(&bytes, &FrameLimits::default());
    }
}
