//! The JSON control protocol (control/src/protocol.rs) as the daemon reads it: one request per
//! line, decoded by `server::decode`, executed by the configuration model (`apply::Director`,
//! here with no workers and steering that touches nothing).
//!
//! Invariants, for every line of the input:
//! - decoding never panics; an error is a response that serializes;
//! - a decoded request re-encodes to JSON that decodes to the same request;
//! - executing it on the model (the lines of one input in order, as one client session) never
//!   panics, and a refused command leaves the configuration as it was (`list` unchanged).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io;
use std::net::IpAddr;
use xvs_control::apply::{Director, Steering};
use xvs_control::protocol::{Command, Response};
use xvs_control::server::decode;
use xvs_dataplane::publish::Publisher;
use xvs_dataplane::snapshot::{Interface, Snapshot, Vip};

/// Steering that touches no kernel map.
struct Nowhere;

impl Steering for Nowhere {
    fn set_service(&mut self, _: Vip, _: bool) -> io::Result<()> {
        Ok(())
    }
    fn set_real(&mut self, _: Vip, _: bool) -> io::Result<()> {
        Ok(())
    }
    fn set_neighbour(&mut self, _: IpAddr, _: bool) {}
}

fuzz_target!(|data: &[u8]| {
    // The server reads lines into a String: anything else never reaches `decode`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut director = None;
    for line in text.lines() {
        let request = match decode(line) {
            Ok(request) => request,
            Err(response) => {
                assert!(!response.ok);
                serde_json::to_string(&response).expect("an error response serializes");
                continue;
            }
        };
        let encoded = serde_json::to_string(&request).expect("a request serializes");
        match decode(&encoded) {
            Ok(again) => assert_eq!(again, request, "re-encoded as {encoded}"),
            Err(e) => panic!("{request:?} re-encoded as {encoded} does not decode: {e:?}"),
        }

        // Built on the first request only: most inputs never decode.
        let director = director.get_or_insert_with(|| {
            Director::new(
                Publisher::new(Snapshot::default()),
                Interface::default(),
                Interface::default(),
                Nowhere,
                Vec::new(),
                1000,
            )
        });
        let changes = request.command.is_change()
            || matches!(
                request.command,
                Command::Batch { .. } | Command::Replace { .. }
            );
        let before = changes.then(|| director.list());
        let response = match director.execute(request.command) {
            Ok(reply) => Response::success(request.id, reply),
            Err(e) => {
                if let Some(before) = before {
                    assert_eq!(
                        director.list(),
                        before,
                        "a refused command ({e}) changed nothing"
                    );
                }
                Response::failure(request.id, e.code(), e.to_string())
            }
        };
        serde_json::to_string(&response).expect("a response serializes");
    }
});
