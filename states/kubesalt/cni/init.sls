{#- The cluster's CNI (calico or cilium) from the upstream manifest in the controller's
    artifact store. The manifest is verified byte for byte against its sha256, then the pod
    subnet is written into the one setting each CNI takes it from; the result is applied
    once (reruns find every object and change nothing). #}
{%- from "kubesalt/map.jinja" import kubesalt, cluster, artifacts, versions, paths,
                                     is_first_master, kubectl with context %}
{%- from "kubesalt/macros.jinja" import kubectl_apply, need, wrong_role with context %}

{%- if not is_first_master %}
{{ wrong_role("The CNI is installed from the first master only", "is not the first master") }}
{%- else %}
{%-   set cni = cluster.get("cni") %}
{%-   if cni not in ["calico", "cilium"] %}
{{-     raise("pillar kubesalt:cluster:cni is " ~ cni ~ "; kubesalt installs calico or cilium") }}
{%-   endif %}
{{- need(["artifacts:" ~ cni ~ "_manifest", "versions:" ~ cni, "cluster:pod_subnet"]) }}
{%-   set upstream = paths.manifests_dir ~ "/" ~ cni ~ "-" ~ versions[cni] ~ ".upstream.yaml" %}
{%-   set rendered = paths.manifests_dir ~ "/" ~ cni ~ ".yaml" %}
{%-   set stamp = "# kubesalt: " ~ cni ~ " " ~ versions[cni] ~ " sha256="
                  ~ artifacts[cni ~ "_manifest"].sha256 ~ " pod_subnet=" ~ cluster.pod_subnet %}
{%-   if cni == "calico" %}
{#-     calico.yaml ships CALICO_IPV4POOL_CIDR commented out; uncomment it with our subnet
        (calico creates its default IP pool from it on first start). #}
{%-     set edit = "/# - name: CALICO_IPV4POOL_CIDR/{s/# - name/- name/;n;s|#   value: .*|  value: \""
                   ~ cluster.pod_subnet ~ "\"|}" %}
{%-   else %}
{#-     cilium's quick-install runs cluster-pool IPAM with its own 10.0.0.0/8 default. #}
{%-     set edit = "s|^\\(  cluster-pool-ipv4-cidr: \\).*|\\1\"" ~ cluster.pod_subnet ~ "\"|" %}
{%-   endif %}

Fetch the {{ cni }} manifest:
  file.managed:
    - name: {{ upstream }}
    - source: {{ artifacts[cni ~ "_manifest"].source }}
    - source_hash: sha256={{ artifacts[cni ~ "_manifest"].sha256 }}
    - mode: '0644'
    - makedirs: True
    - show_changes: False

# The first line records what the file was rendered from, so a rerun with the same inputs
# leaves it alone and a new version or subnet renders it again.
Set the pod subnet in the {{ cni }} manifest:
  cmd.run:
    - name: >-
        { echo {{ stamp | yaml_squote }}; sed -e {{ edit | yaml_squote }} {{ upstream }}; }
        > {{ rendered }}.tmp && mv {{ rendered }}.tmp {{ rendered }}
    - unless: >-
        head -n 1 {{ rendered }} | grep -qxF {{ stamp | yaml_squote }}
    - require:
      - file: Fetch the {{ cni }} manifest

{{ kubectl_apply("Apply the " ~ cni ~ " manifest", rendered,
                 ["cmd: Set the pod subnet in the " ~ cni ~ " manifest"]) }}
{%-   set selector = "k8s-app=calico-node" if cni == "calico" else "k8s-app=cilium" %}

Wait for the {{ cni }} agents to be ready:
  cmd.run:
    - name: >-
        {{ kubectl }} -n kube-system
        wait --for=condition=Ready pods -l {{ selector }} --timeout={{ kubesalt.addons.wait_timeout }}
    - unless: >-
        {{ kubectl }} -n kube-system
        wait --for=condition=Ready pods -l {{ selector }} --timeout=0s
    - retry:
        attempts: 3
        interval: 10
    - require:
      - cmd: Apply the {{ cni }} manifest
{%- endif %}
