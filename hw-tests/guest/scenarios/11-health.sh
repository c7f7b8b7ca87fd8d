# Scenario 7 (health): the PF's link set down marks its VFs Unhealthy in
# kubelet's ListAndWatch; set up again, Healthy. Driven by link events.
use_first_pf
start_device_plugin "{\"resourceList\":[{\"resourceName\":\"igb\",\"selectors\":{\"pfNames\":[\"$pfdev\"]}}]}"
wait_list intel.com/igb "$(vfs_as "$pf" Healthy)"
ip link set "$pfdev" down
wait_list intel.com/igb "$(vfs_as "$pf" Unhealthy)"
link_up "$pfdev"
wait_list intel.com/igb "$(vfs_as "$pf" Healthy)"
