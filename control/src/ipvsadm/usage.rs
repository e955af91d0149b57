//! `-h` and `-v`.

use super::DEFAULT_SCHEDULER;
use crate::protocol::{
    VersionInfo, DEFAULT_PERSISTENT_TIMEOUT, MAX_PERSISTENT_TIMEOUT, PROTOCOL_VERSION,
};

/// `-v`: xvsadm's own version line.
pub fn version_line() -> String {
    format!(
        "xvsadm v{} (ipvsadm v1.31 syntax, control protocol v{PROTOCOL_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-v`: the daemon's version, as it answered.
pub fn format_daemon_version(info: &VersionInfo) -> String {
    format!(
        "xvsd v{} (IPVS v{} compatible, control protocol v{})",
        info.daemon, info.ipvs, info.protocol
    )
}

/// `-h`: ipvsadm's usage text, cut down to what xvsadm implements.
pub fn usage() -> String {
    format!(
        r#"{version}
Usage:
  xvsadm [--control PATH] -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask]
                                    [-b sched-flags]
  xvsadm [--control PATH] -D virtual-service
  xvsadm [--control PATH] -C
  xvsadm [--control PATH] -a|e virtual-service -r server-address [-m] [-w weight]
                                    [-x uthreshold] [-y lthreshold]
  xvsadm [--control PATH] -d virtual-service -r server-address
  xvsadm [--control PATH] -L|l [virtual-service] [-n]
                                    [--stats|--thresholds|--persistent-conn] [--exact]
                                    [--nosort]
  xvsadm -h|-v

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table (also with no arguments at all)
  --help            -h        display this help message
  --version         -v        display the versions of xvsadm and xvsd

virtual-service:
  --tcp-service|-t  service-address   service-address is IPv4-address:port
  --udp-service|-u  service-address   service-address is IPv4-address:port

Options:
  --scheduler    -s scheduler         one of those xvsd implements (rr, wrr, lc, wlc, ...),
                                      the default scheduler is {DEFAULT_SCHEDULER}.
  --persistent   -p [timeout]         persistent service: a client's new connections go to
                                      the same real server (timeout 1..{max} seconds,
                                      default {default}; -E without -p turns it off)
  --netmask      -M netmask           persistent granularity mask (default 255.255.255.255)
  --real-server  -r server-address    server-address is IPv4-address[:port];
                                      the port defaults to the service's port
  --masquerading -m                   masquerading (NAT): the only method xvs implements,
                                      and the default here (ipvsadm's default is -g)
  --gatewaying   -g                   direct routing: not supported
  --ipip         -i                   ipip encapsulation (tunneling): not supported
  --weight       -w weight            capacity of real server, 0..65535 (default 1;
                                      -e without -w sets 1, as ipvsadm does)
  --u-threshold  -x uthreshold        upper threshold of connections (0: no limit;
                                      -e without -x sets 0, as ipvsadm does)
  --l-threshold  -y lthreshold        lower threshold of connections (at most the upper)
  --numeric      -n                   numeric output (xvsadm always prints numbers)
  --stats                             output of statistics information
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --exact        -X                   expand numbers (display exact values)
  --nosort                            list in xvsd's order (real servers as added)
  --sort                              does nothing, for backwards compatibility
  --sched-flags  -b flags             scheduler flags (comma-separated): sh-fallback,
                                      sh-port (sh), mh-fallback, mh-port (mh), flag-1,
                                      flag-2 (any scheduler; -E without -b clears them)
  --control PATH                      xvsd's control socket (default ${env},
                                      else {path})

The other ipvsadm options (-f -c -o -Z -S -R --pe --set --rate --timeout --daemon
--start-daemon ...) are recognised and refused: not supported yet.
"#,
        version = version_line(),
        max = MAX_PERSISTENT_TIMEOUT,
        default = DEFAULT_PERSISTENT_TIMEOUT,
        env = crate::client::CONTROL_PATH_ENV,
        path = crate::client::DEFAULT_CONTROL_PATH,
    )
}
