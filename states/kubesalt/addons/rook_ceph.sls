{#- rook-ceph for blueprints with storage: the operator from its upstream manifest (the
    artifact holds crds, common and operator in one file), then a CephCluster using exactly
    the devices configured on the storage nodes (pillar kubesalt:storage_nodes). #}
{%- from "kubesalt/map.jinja" import kubesalt, cluster, versions, paths, is_first_master
    with context %}
{%- from "kubesalt/macros.jinja" import kubectl_apply, need, wrong_role with context %}
{%- from "kubesalt/addons/manifest.jinja" import upstream_manifest, wait_deployments
    with context %}

{%- if not is_first_master %}
{{ wrong_role("rook-ceph is installed from the first master only",
              "is not the first master") }}
{%- elif cluster.get("storage", "none") == "none" %}

The cluster has no managed storage:
  test.succeed_without_changes:
    - comment: "blueprint {{ cluster.get('blueprint') }} has storage none"
{%- else %}
{{- need(["artifacts:rook_ceph_manifests", "versions:rook_ceph", "storage_nodes"]) }}
{%-   if not kubesalt.storage_nodes %}
{{-     raise("pillar kubesalt:storage_nodes is empty: configure at least one node with the"
              ~ " storage role and a device (salt-run node.configure ... roles=...,storage"
              ~ " storage_devices=/dev/...)") }}
{%-   endif %}
{%-   set cluster_path = paths.manifests_dir ~ "/rook-ceph-cluster.yaml" %}
{{ upstream_manifest("rook-ceph operator", "rook_ceph_manifests",
                     "rook-ceph-" ~ versions.rook_ceph ~ ".yaml",
                     kubesalt.addons.rook.namespace) }}

Write the CephCluster manifest:
  file.managed:
    - name: {{ cluster_path }}
    - source: salt://kubesalt/addons/files/cephcluster.yaml.j2
    - template: jinja
    - mode: '0644'
    - makedirs: True

{{ kubectl_apply("Apply the CephCluster", cluster_path,
                 ["file: Write the CephCluster manifest",
                  "cmd: Wait for the rook-ceph operator deployments to be available"]) }}
{%- endif %}
