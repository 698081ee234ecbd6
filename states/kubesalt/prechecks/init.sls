{#- Checks that the node is still as conjurer found it and the controller configured it,
    before any stage changes something. Each check is its own state so a failure names the
    one problem; none of them changes the node. #}
{%- from "kubesalt/map.jinja" import kubesalt, node, cluster, artifacts, is_master with context %}

{%- set problems = {} %}
{%- for key in ["cluster", "versions", "artifacts", "node", "masters"] %}
{%-   if not kubesalt.get(key) %}
{%-     do problems.update({"Pillar kubesalt:" ~ key ~ " is present":
          "pillar kubesalt:" ~ key ~ " is missing: approve and configure the node"
          ~ " (salt-run node.approve / node.configure) so the controller's ext_pillar"
          ~ " provides it"}) %}
{%-   endif %}
{%- endfor %}

{%- if node %}
{%-   set wanted_artifacts = ["kubeadm", "kubelet", "kubectl", "containerd", "runc", "crictl",
                              "cni_plugins", "consul"] + (["etcd"] if is_master else []) %}
{%-   set absent = wanted_artifacts | reject("in", artifacts) | list %}
{%-   if absent %}
{%-     do problems.update({"Artifacts are in the controller's store":
          "pillar kubesalt:artifacts lacks " ~ absent | join(", ") ~ ": run"
          ~ " `salt-run artifacts.sync " ~ cluster.get("k8s_version", "VERSION") ~ "` on the"
          ~ " controller"}) %}
{%-   endif %}

{%-   set interface_addresses = grains.get("ip4_interfaces", {}).get(node.interface, []) %}
{%-   if node.address not in interface_addresses %}
{%-     do problems.update({"Node address " ~ node.address ~ " is on " ~ node.interface:
          "interface " ~ node.interface ~ " has " ~ (interface_addresses | join(", ") or
          "no IPv4 address") ~ ", not " ~ node.address ~ ": fix the network or reconfigure"
          ~ " the node (salt-run node.configure ... interface=)"}) %}
{%-   endif %}

{%-   if is_master and not kubesalt.etcd.get("initial_cluster") %}
{%-     do problems.update({"Pillar kubesalt:etcd is present on a master":
          "pillar kubesalt:etcd is missing on master " ~ node.id ~ ": the controller has not"
          ~ " issued its etcd certificate yet"}) %}
{%-   endif %}

{%-   if not kubesalt.get("kubeadm", {}).get("token") %}
{%-     do problems.update({"Pillar kubesalt:kubeadm is present":
          "pillar kubesalt:kubeadm:token is missing: the controller has not created the"
          ~ " cluster's secrets yet (salt-run cluster.provision creates them)"}) %}
{%-   endif %}

{%-   set missing_commands = [] %}
{%-   for command in kubesalt.prechecks.required_commands %}
{%-     if not salt["cmd.which"](command) %}
{%-       do missing_commands.append(command) %}
{%-     endif %}
{%-   endfor %}
{%-   if missing_commands %}
{%-     do problems.update({"Host tools kubeadm needs are installed":
          "not on the PATH: " ~ missing_commands | join(", ") ~ ": install them with the OS"
          ~ " package manager (Debian/Ubuntu: conntrack iproute2 iptables mount util-linux;"
          ~ " RedHat/Suse: conntrack-tools iproute iptables util-linux)"}) %}
{%-   endif %}
{%- endif %}

{%- for check, problem in problems | dictsort %}

{{ check }}:
  test.configurable_test_state:
    - changes: False
    - result: False
    - comment: {{ problem | yaml_dquote }}
{%- endfor %}

{%- if not problems %}

Node {{ node.id }} is ready for provisioning:
  test.succeed_without_changes:
    - comment: "pillar complete, {{ node.address }} on {{ node.interface }}, host tools present"
{%- endif %}

{#- Swap is not a failure here: the os stage turns it off (kubelet refuses to start with
    swap on unless told otherwise); this says so in the stage output. #}
{%- if grains.get("swap_total", 0) > 0 %}

Swap is on and will be turned off by the os stage:
  test.succeed_without_changes:
    - comment: "{{ grains['swap_total'] }} MiB of swap active"
{%- endif %}
