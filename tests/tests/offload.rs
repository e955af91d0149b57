//! A topology nobody prepared for us: the client and real servers keep the veth default of
//! checksum offload, so their frames reach the director with *partial* checksums (only the
//! pseudo-header sum, to be completed by "hardware" that a veth does not have). The director
//! must still deliver correct checksums, or the receivers drop every segment.

use xvs_control::topology::{big_file_bytes, TopologySpec, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, Cluster};

#[test]
fn partial_checksums_from_offloading_senders_are_completed() -> anyhow::Result<()> {
    if !root_or_skip("partial_checksums_from_offloading_senders_are_completed") {
        return Ok(());
    }
    let mut spec = TopologySpec::seed();
    spec.prefix = "xvse2eoff".into();
    spec.sender_offloads = true;
    let cluster = Cluster::start_spec(&spec, &[])?;
    cluster.configure("-t", 80)?;
    assert_eq!(cluster.curl("/")?, "198.19.0.148 is www.shuyan.com\n");
    assert!(
        cluster.download(BIG_FILE_PATH)? == big_file_bytes(),
        "download corrupted"
    );
    Ok(())
}
