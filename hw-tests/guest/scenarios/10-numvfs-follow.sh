# Scenario 1, second half: while the daemon runs, VFs created or removed
# through sriov_numvfs join or leave kubelet's ListAndWatch.
use_first_pf
start_device_plugin "{\"resourceList\":[{\"resourceName\":\"igb\",\"selectors\":{\"pfNames\":[\"$pfdev\"]}}]}"
wait_list intel.com/igb "$(vfs_as "$pf" Healthy)"
set_num_vfs "$pf" 3
wait_list intel.com/igb "$(vfs_as "$pf" Healthy)"
[ "$(last_list intel.com/igb | wc -w)" -eq 3 ] || fail "expected 3 VFs: $(last_list intel.com/igb)"
set_num_vfs "$pf" 7
wait_list intel.com/igb "$(vfs_as "$pf" Healthy)"
[ "$(last_list intel.com/igb | wc -w)" -eq 7 ] || fail "expected 7 VFs: $(last_list intel.com/igb)"
