//! The daemon's refusals in ipvsadm's words, and `-h`.

use super::*;

#[test]
fn daemon_errors_read_like_ipvsadm() {
    let service = svc(Protocol::Tcp, VIP, 80);
    let add_service = Command::AddService {
        service,
        scheduler: None,
        sched_flags: None,
        persistent: None,
        netmask: None,
    };
    let del_real = Command::DelReal {
        service,
        real: real([198, 19, 0, 148], 80),
    };
    let m = |c: &Command, code| daemon_error_message(c, code, "daemon text");
    assert_eq!(
        m(&add_service, ErrorCode::ServiceExists),
        "Service already exists"
    );
    assert_eq!(m(&add_service, ErrorCode::NoSuchService), "No such service");
    assert_eq!(
        m(&del_real, ErrorCode::NoSuchService),
        "Service not defined"
    );
    assert_eq!(
        m(&del_real, ErrorCode::RealExists),
        "Destination already exists"
    );
    assert_eq!(m(&del_real, ErrorCode::NoSuchReal), "No such destination");
    assert_eq!(
        m(&add_service, ErrorCode::UnknownScheduler),
        "Scheduler or persistence engine not found: daemon text"
    );
    assert_eq!(m(&add_service, ErrorCode::InvalidArgument), "daemon text");
    // IPVS's ERANGE for a lower threshold above the upper one: strerror's words, then ours.
    let add_real = |upper, lower| Command::AddReal {
        service,
        real: real([198, 19, 0, 148], 80),
        weight: Some(1),
        forward: Some(Forward::Masq),
        upper_threshold: Some(upper),
        lower_threshold: Some(lower),
    };
    assert_eq!(
        m(&add_real(0, 5), ErrorCode::InvalidArgument),
        "Numerical result out of range: daemon text"
    );
    assert_eq!(
        m(&add_real(5, 5), ErrorCode::InvalidArgument),
        "daemon text"
    );
}

#[test]
fn help_names_the_defaults() {
    let text = usage();
    assert!(text.starts_with("xvsadm v"));
    assert!(text.contains("the default scheduler is wlc."));
    assert!(text.contains("ipvsadm's default is -g"));
    assert!(text.contains("--control PATH"));
    assert!(text.contains("  --sched-flags  -b flags             scheduler flags"));
    assert!(text.contains("  --u-threshold  -x uthreshold        upper threshold"));
    assert!(text.contains("  --l-threshold  -y lthreshold        lower threshold"));
    assert!(text.contains("  --thresholds                        output of thresholds"));
    assert!(text.contains("  --persistent   -p [timeout]         persistent service"));
    assert!(text.contains("  --netmask      -M netmask           persistent granularity mask"));
    assert!(text.contains("  --persistent-conn                   output of persistent connection"));
    assert!(text.contains("default 360;"));
    assert!(!text.contains("-p -M"));
    assert!(text.contains("\n                                      else /run/xvs/xvs.sock)\n"));
}
