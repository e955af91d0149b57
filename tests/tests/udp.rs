//! A UDP virtual service: datagrams are scheduled per client endpoint and the replies are
//! translated back to the VIP.

use xvs_tests::{root_or_skip, Cluster};

const PORT: u16 = 5353;

#[test]
fn udp_service_round_robins_and_answers_from_the_vip() -> anyhow::Result<()> {
    if !root_or_skip("udp_service_round_robins_and_answers_from_the_vip") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2eudp", 1, &[])?;
    // A UDP responder on each real server that answers with its own address, from PORT.
    cluster.start_udp_responders(PORT, None)?;
    cluster.configure("-u", PORT)?;
    // A new client port each time: a new connection, so round robin moves on.
    cluster.udp_queries_alternate(PORT, 4)?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("UDP  198.18.0.129:5353 rr"), "{listing}");
    Ok(())
}
