//! A topology nobody prepared for us: the client and real servers keep the veth default of
//! checksum offload, so their frames reach the director with *partial* checksums (only the
//! pseudo-header sum, to be completed by "hardware" that a veth does not have). The director
//! must still deliver correct checksums, or the receivers drop every segment.

use xvs_control::director::{find_binary, DirectorProcess};
use xvs_control::topology::{big_file_bytes, Topology, TopologySpec, BIG_FILE_PATH};
use xvs_tests::root_or_skip;

#[test]
fn partial_checksums_from_offloading_senders_are_completed() -> anyhow::Result<()> {
    if !root_or_skip("partial_checksums_from_offloading_senders_are_completed") {
        return Ok(());
    }
    let mut spec = TopologySpec::seed();
    spec.prefix = "xvse2eoff".into();
    spec.sender_offloads = true;
    let mut topo = Topology::build(&spec)?;
    topo.start_web_servers()?;
    let xvsadm = find_binary("xvsadm")?;
    let director = DirectorProcess::start(&topo, &find_binary("xvsd")?, &[])?;
    director.xvsadm(&xvsadm, &["-A", "-t", "198.18.0.129:80", "-s", "rr"])?;
    for real in ["198.19.0.148", "198.19.0.137"] {
        director.xvsadm(&xvsadm, &["-a", "-t", "198.18.0.129:80", "-r", real, "-m"])?;
    }
    let page = topo.run_in(
        topo.client_ns(),
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "http://198.18.0.129/",
        ],
    )?;
    assert_eq!(page, "198.19.0.148 is www.shuyan.com\n");
    let out = topo.work_dir().join("big.download");
    topo.run_in(
        topo.client_ns(),
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-o",
            &out.to_string_lossy(),
            &format!("http://198.18.0.129{BIG_FILE_PATH}"),
        ],
    )?;
    assert!(
        std::fs::read(&out)? == big_file_bytes(),
        "download corrupted"
    );
    drop(director);
    Ok(())
}
