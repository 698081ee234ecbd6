{#- Take a node out of Kubernetes before it is reset: drained (unless the removal says
    drain=False) and deleted. Runs on the first master that stays, for pillar
    kubesalt_op:node. #}
{%- from "kubesalt/map.jinja" import paths with context %}
{%- set target = salt["pillar.get"]("kubesalt_op:node") %}
{%- if not target %}
{{- raise("pillar kubesalt_op:node names the node to remove; the orchestration passes it") }}
{%- endif %}
{%- set drain = salt["pillar.get"]("kubesalt_op:drain", True) %}
{%- set kubectl = paths.bin_dir ~ "/kubectl --kubeconfig " ~ paths.admin_kubeconfig %}
{%- if drain %}

include:
  - kubesalt.kubeadm.drain
{%- endif %}

Delete {{ target }} from Kubernetes:
  cmd.run:
    - name: {{ kubectl }} delete node {{ target }} --ignore-not-found
    - unless: {{ (kubectl ~ " get node " ~ target ~ " 2>&1 | grep -q NotFound") | yaml_dquote }}
    - retry:
        attempts: 12
        interval: 5
{%- if drain %}
    - require:
      - cmd: Drain {{ target }}
{%- endif %}
