# Scenario 5, continued: all VFs of a PF ADDed concurrently, then DELed
# concurrently, 20 rounds; after every round each VF is as it was.
use_first_pf
indexes="0 1 2 3 4 5 6"
for i in $indexes; do
    vf=$(vf_address "$pf" "$i")
    eval "before_pf_$i=\$(vf_line \"\$pfdev\" $i)"
    eval "before_link_$i=\$(link_summary \"\$(vf_netdev \"\$vf\")\")"
    netconf "$vf" ",\"vlan\":$((600 + i)),\"mac\":\"02:00:00:00:07:0$i\",\"trust\":\"on\"" 10.80.0.0/24 >"/tmp/conc-$i.json"
    ip netns add "pc$i"
done

run_all() { # run_all COMMAND: that command on every VF at once
    for i in $indexes; do
        (cni "$1" "cc$i" "pc$i" net1 <"/tmp/conc-$i.json" >"/tmp/conc-$i.out" 2>&1 || echo "$1 vf $i: $(cat "/tmp/conc-$i.out")" >>/tmp/conc.failed) &
    done
    wait
}
for round in $(seq 20); do
    rm -f /tmp/conc.failed
    run_all ADD
    [ ! -e /tmp/conc.failed ] || fail "round $round: $(cat /tmp/conc.failed)"
    for i in $indexes; do
        ip -n "pc$i" -o link show net1 | grep -qF "02:00:00:00:07:0$i" || fail "round $round: pod $i has no net1 with its MAC"
    done
    run_all DEL
    [ ! -e /tmp/conc.failed ] || fail "round $round: $(cat /tmp/conc.failed)"
    for i in $indexes; do
        vf=$(vf_address "$pf" "$i")
        eval "want_pf=\$before_pf_$i; want_link=\$before_link_$i"
        [ "$(vf_line "$pfdev" "$i")" = "$want_pf" ] || fail "round $round: vf $i PF side $(vf_line "$pfdev" "$i")"
        [ "$(link_summary "$(vf_netdev "$vf")")" = "$want_link" ] || fail "round $round: vf $i netdev $(link_summary "$(vf_netdev "$vf")")"
    done
done
[ -z "$(ls /var/lib/cni/sriov/*.json 2>/dev/null)" ] || fail "a state file is left"
for i in $indexes; do ip netns del "pc$i"; done
