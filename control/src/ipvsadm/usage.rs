//! `-h` and `-v`.

use super::check::format_seconds;
use super::DEFAULT_SCHEDULER;
use crate::protocol::{
    VersionInfo, DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_FALL,
    DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_RISE, MAX_PERSISTENT_TIMEOUT, PROTOCOL_VERSION,
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

/// `-h`: ipvsadm's usage text (`usage_exit`), adapted to what xvsadm implements: DPVS's
/// FullNAT commands and options (its `usage_exit`'s lines), xvs's health-check options,
/// `--conn-limit`, `--health` and `--sloppy` added, the options xvs refuses listed as such.
pub fn usage() -> String {
    format!(
        r#"{version}
Usage:
  xvsadm [--control PATH] -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask]
                                    [-b sched-flags] [check-options]
                                    [--conn-limit max-conns]
  xvsadm [--control PATH] -D virtual-service
  xvsadm [--control PATH] -C
  xvsadm [--control PATH] -R
  xvsadm [--control PATH] -S [-n]
  xvsadm [--control PATH] -a|e virtual-service -r server-address [-g|-i|-m|--fullnat]
                                    [-w weight] [-x uthreshold] [-y lthreshold]
  xvsadm [--control PATH] -d virtual-service -r server-address
  xvsadm [--control PATH] -P|Q virtual-service -z local-address
  xvsadm [--control PATH] -G [virtual-service]
  xvsadm [--control PATH] -L|l [virtual-service] [options]
  xvsadm [--control PATH] -L|l -c [-n] [--nosort] [--persistent-conn]
  xvsadm [--control PATH] -L|l --timeout
  xvsadm [--control PATH] -L|l --health [virtual-service] [--nosort]
  xvsadm [--control PATH] -Z [virtual-service]
  xvsadm [--control PATH] --set tcp tcpfin udp
  xvsadm [--control PATH] --sloppy tcp|udp|tcp,udp|none
  xvsadm [--control PATH] capture [-i external|internal|IFNAME] [-c count] [-w file|-]
                                    [-n|-nn] [filter...]   (the director's tcpdump)
  xvsadm -h|-v

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin (all of them or, if one
                              fails, none)
  --add-laddr       -P        add local address (FullNAT)
  --del-laddr       -Q        del local address
  --get-laddr       -G        get local address (all services' without one)
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table (also with no arguments at all)
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values (0 keeps a value)
  --sloppy protocols          sloppy TCP and/or UDP (xvs; IPVS's sysctls): protocols
                              is tcp, udp, tcp,udp or none; the others are turned off
  --help            -h        display this help message
  --version         -v        display the versions of xvsadm and xvsd

virtual-service:
  --tcp-service|-t  service-address   service-address is IPv4-address:port or
                                      [IPv6-address]:port
  --udp-service|-u  service-address   service-address is IPv4-address:port or
                                      [IPv6-address]:port

Options:
  --scheduler    -s scheduler         one of those xvsd implements (rr, wrr, lc, wlc, ...),
                                      the default scheduler is {DEFAULT_SCHEDULER}.
  --persistent   -p [timeout]         persistent service: a client's new connections go to
                                      the same real server (timeout 1..{max} seconds,
                                      default {default}; -E without -p turns it off)
  --netmask      -M netmask           persistent granularity mask (default 255.255.255.255);
                                      for an IPv6 service a prefix length (default 128)
  --real-server  -r server-address    server-address is IPv4-address[:port],
                                      [IPv6-address]:port or IPv6-address;
                                      the port defaults to the service's port; of the
                                      service's address family unless tunneling (-i)
  --gatewaying   -g                   gatewaying (direct routing): the default; the real
                                      server holds the VIP and answers clients itself
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           fullnat mode: requests leave from one of the
                                      service's local addresses (-P), so replies come
                                      back whatever the real server's routes; the
                                      port may differ from the service's
  --tun-type     type                 one of ipip|gue|gre (with -i; default ipip)
  --tun-port     port                 tunnel destination port (gue only)
  --tun-nocsum                        tunnel encapsulation without checksum (the default)
  --tun-csum                          tunnel encapsulation with checksum (gue, gre)
  --weight       -w weight            capacity of real server, 0..65535 (default 1;
                                      -e without -w sets 1, as ipvsadm does)
  --u-threshold  -x uthreshold        upper threshold of connections (0: no limit;
                                      -e without -x sets 0, as ipvsadm does)
  --l-threshold  -y lthreshold        lower threshold of connections (at most the upper)
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact        -X                   expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --health                            output of health checks and real servers' health
                                      (a down server shows weight 0 in -L)
  --nosort                            list in xvsd's order (real servers as added)
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output (xvsadm always prints numbers)
  --sched-flags  -b flags             scheduler flags (comma-separated): sh-fallback,
                                      sh-port (sh), mh-fallback, mh-port (mh), flag-1,
                                      flag-2 (any scheduler; -E without -b clears them;
                                      not DPVS's -b, which is --fullnat)
  --laddr        -z local-ip          local IP (IPv4 or IPv6, no port) of -P and -Q
  --control PATH                      xvsd's control socket (default ${env},
                                      else {path})

Check options (-A and -E; -E without --check leaves the check as it is):
  --check tcp|http|none               check the real servers: a TCP connection, or an
                                      HTTP GET; none removes the check
  --check-port   port                 port to check (default: the real server's port)
  --check-path   path                 http: the path requested (default /)
  --check-status code                 http: the status that means healthy (default 200)
  --check-interval seconds            time between two checks (default {interval})
  --check-timeout  seconds            a check not answered in time fails (default
                                      {timeout}, at most the interval)
  --rise         count                successes that bring a server up (default {rise})
  --fall         count                failures that take a server down (default {fall})

Connection limit (-A and -E; -E without --conn-limit leaves the limit as it is):
  --conn-limit   max-conns            at most max-conns connections of the service at
                                      once, over all workers; new ones beyond it are
                                      refused (0: no limit, the default)

Sloppy (--sloppy, xvs's form of IPVS's sysctls sloppy_tcp and sloppy_udp):
  tcp                                 a TCP segment other than a SYN or RST of a flow
                                      without a connection opens one on mh, sh and dh
                                      services (every director picks the same real
                                      server), so flows that ECMP moves keep their server
  udp                                 accepted for scale-out configurations (any UDP
                                      datagram opens a connection anyway)
  none                                both off (the default unless xvsd --sloppy-tcp,
                                      --sloppy-udp say otherwise)

Not supported by xvs, refused by name: --fwmark-service (-f), --sctp-service, --ipv6 (-6,
which goes with -f only), --ops (-o), --pe, --tun-remcsum, --tun-info, --daemon,
--start-daemon, --stop-daemon and the sync daemon options, DPVS's --ifname (-F).
"#,
        version = version_line(),
        max = MAX_PERSISTENT_TIMEOUT,
        default = DEFAULT_PERSISTENT_TIMEOUT,
        interval = format_seconds(DEFAULT_CHECK_INTERVAL_MS),
        timeout = format_seconds(DEFAULT_CHECK_TIMEOUT_MS),
        rise = DEFAULT_RISE,
        fall = DEFAULT_FALL,
        env = crate::client::CONTROL_PATH_ENV,
        path = crate::client::DEFAULT_CONTROL_PATH,
    )
}
