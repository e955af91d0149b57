#!/bin/bash
# CPU used by an idle xvsd (no traffic) with each --idle strategy, in a namespace of its own
# (two veth pairs, addresses from 198.18.0.0/15), removed on exit. Run as root from the
# repository root after `cargo build --release`.
set -u
ns=xvsidle$$
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; sleep 0.3; ip netns del $ns 2>/dev/null' EXIT
ip netns add $ns
ip -n $ns link add ext0 type veth peer name ext0p
ip -n $ns link add int0 type veth peer name int0p
for i in ext0 ext0p int0 int0p; do ip -n $ns link set $i up; done
ip -n $ns addr add 198.18.0.1/24 dev ext0
ip -n $ns addr add 198.19.0.1/24 dev int0
for idle in adaptive busy; do
  ip netns exec $ns target/release/xvsd --external ext0 --internal int0 --control /tmp/xvsidle.sock --idle $idle 2>/dev/null &
  pid=$!
  sleep 1.5
  t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 5; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  echo "$idle: $(( (t1 - t0) * 100 / 5 / $(getconf CLK_TCK) ))% of one CPU while idle (5 s)"
  kill $pid; wait $pid 2>/dev/null
done
