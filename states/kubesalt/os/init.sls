{#- Operating system settings Kubernetes needs on every node: no swap, the overlay and
    bridge-netfilter kernel modules, forwarding sysctls, the proxy environment and the
    proxy's root CA when the cluster has a proxy. #}
{%- from "kubesalt/map.jinja" import kubesalt, proxy, no_proxy, paths with context %}

Turn swap off now:
  cmd.run:
    - name: swapoff -a
    # /proc/swaps has a header line and one line per active swap area.
    - onlyif: grep -q '^/' /proc/swaps

Keep swap off across reboots:
  file.replace:
    - name: /etc/fstab
    # Comment out active swap entries; a commented line no longer matches, so reruns change
    # nothing.
    - pattern: '^([^#\s]\S*\s+\S+\s+swap\s.*)$'
    - repl: '# \1  # disabled by kubesalt: kubelet needs swap off'
    - ignore_if_missing: True
    - backup: False

{%- for module, works in kubesalt.os.kernel_modules | dictsort %}

# Persisted below in one modules-load.d file rather than kmod's /etc/modules edits, which
# differ per OS family.
Load kernel module {{ module }}:
  cmd.run:
    - name: modprobe {{ module }}
    - unless: {{ works }}
{%- endfor %}

Load kernel modules at boot:
  file.managed:
    - name: {{ kubesalt.os.modules_load_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by kubesalt: containerd needs overlay, kube-proxy and the CNI br_netfilter.
      {%- for module in kubesalt.os.kernel_modules | sort %}
        {{ module }}
      {%- endfor %}

{%- for key, value in kubesalt.os.sysctls | dictsort %}

Set sysctl {{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value }}
    # sysctl.present also writes the value to this file so it survives a reboot.
    - config: {{ kubesalt.os.sysctl_file }}
    - require:
    {%- for module in kubesalt.os.kernel_modules | sort %}
      - cmd: Load kernel module {{ module }}
    {%- endfor %}
{%- endfor %}

{%- if proxy %}

Write the proxy environment for containerd and kubelet:
  file.managed:
    - name: {{ paths.proxy_env }}
    # Proxy URLs may carry credentials: root only, and no diff in the state output.
    - mode: '0600'
    - makedirs: True
    - show_changes: False
    - contents: |
        HTTP_PROXY={{ proxy.get("http") or "" }}
        HTTPS_PROXY={{ proxy.get("https") or proxy.get("http") or "" }}
        NO_PROXY={{ no_proxy | join(",") }}
        http_proxy={{ proxy.get("http") or "" }}
        https_proxy={{ proxy.get("https") or proxy.get("http") or "" }}
        no_proxy={{ no_proxy | join(",") }}
{%- else %}

Remove the proxy environment of containerd and kubelet:
  file.absent:
    - name: {{ paths.proxy_env }}
{%- endif %}

{%- if proxy and proxy.get("root_ca") %}
{%-   set trust_state = "Trust the proxy's root CA" %}

{{ trust_state }}:
  file.managed:
    - name: {{ kubesalt.trust_store.anchor }}
    - mode: '0644'
    - makedirs: True
    - contents: {{ proxy.root_ca | yaml_encode }}
{%- else %}
{%-   set trust_state = "Remove the proxy's root CA from the system trust store" %}

{{ trust_state }}:
  file.absent:
    - name: {{ kubesalt.trust_store.anchor }}
{%- endif %}

Update the system trust store:
  cmd.run:
    - name: {{ kubesalt.trust_store.update_cmd }}
    - onchanges:
      - file: {{ trust_state }}
