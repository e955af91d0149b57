//! A UDP virtual service: datagrams are scheduled per client endpoint and the replies are
//! translated back to the VIP.

use std::time::Duration;
use xvs_tests::{root_or_skip, Cluster};

const PORT: u16 = 5353;

#[test]
fn udp_service_round_robins_and_answers_from_the_vip() -> anyhow::Result<()> {
    if !root_or_skip("udp_service_round_robins_and_answers_from_the_vip") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2eudp", 1, &[])?;
    // A UDP responder on each real server that answers with its own address, from PORT.
    for i in 0..cluster.topo.reals().len() {
        let ns = cluster.topo.real_ns(i).to_string();
        let addr = cluster.topo.reals()[i].addr.to_string();
        cluster.topo.spawn_in(
            &ns,
            &[
                "socat",
                &format!("UDP4-RECVFROM:{PORT},reuseaddr,fork"),
                &format!("SYSTEM:echo {addr}"),
            ],
        )?;
    }
    std::thread::sleep(Duration::from_millis(300));
    cluster.configure("-u", PORT)?;
    let target = format!("UDP4:{}:{PORT}", cluster.topo.vip());
    let mut answers = Vec::new();
    for _ in 0..4 {
        // A new client port each time: a new connection, so round robin moves on. socat only
        // accepts the reply if it comes from the VIP:PORT it sent to.
        let out = cluster.topo.run_in_timeout(
            cluster.topo.client_ns(),
            &["sh", "-c", &format!("echo ping | socat -T2 - {target}")],
            Duration::from_secs(5),
        )?;
        answers.push(out.trim().to_string());
    }
    assert_eq!(
        answers,
        [
            "198.19.0.148",
            "198.19.0.137",
            "198.19.0.148",
            "198.19.0.137"
        ],
        "xvsd log:\n{}",
        cluster.director.log()
    );
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("UDP  198.18.0.129:5353 rr"), "{listing}");
    Ok(())
}
