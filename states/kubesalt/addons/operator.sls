{#- The kubesalt operator. With an `operator_manifest` in the artifact store that manifest is
    applied; without one, the formula's own minimal manifest: the kubesalt-system namespace
    and the cluster-identity ConfigMap the operator reads (what cluster this is, which
    blueprint and versions it was provisioned with). #}
{%- from "kubesalt/map.jinja" import kubesalt, node, artifacts, paths, is_first_master,
                                     kubectl_apply with context %}
{%- from "kubesalt/addons/manifest.jinja" import upstream_manifest with context %}

{%- if not is_first_master %}

The operator is installed from the first master only:
  test.fail_without_changes:
    - comment: "{{ node.get('id', grains['id']) }} is not the first master"
{%- elif "operator_manifest" in artifacts %}
{{ upstream_manifest("kubesalt operator", "operator_manifest", "kubesalt-operator.yaml",
                     kubesalt.addons.operator_namespace) }}
{%- else %}
{%-   set path = paths.manifests_dir ~ "/kubesalt-operator.yaml" %}

Write the kubesalt operator manifest:
  file.managed:
    - name: {{ path }}
    - source: salt://kubesalt/addons/files/operator.yaml.j2
    - template: jinja
    - mode: '0644'
    - makedirs: True

{{ kubectl_apply("Apply the kubesalt operator manifest", path,
                 ["file: Write the kubesalt operator manifest"]) }}
{%- endif %}
