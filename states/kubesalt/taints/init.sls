{#- Converged clusters run workloads on the masters: remove kubeadm's control-plane
    NoSchedule taint. Dedicated clusters keep workloads off them: make sure every master
    carries it. Each change is guarded by a query of the node's taints, so a rerun changes
    nothing. #}
{%- from "kubesalt/map.jinja" import cluster, masters, kubectl, is_first_master,
                                     control_plane_taint with context %}
{%- from "kubesalt/macros.jinja" import wrong_role with context %}

{%- if not is_first_master %}
{{ wrong_role("Taints are managed from the first master only", "is not the first master") }}
{%- else %}
{%-   set taint = control_plane_taint.key ~ ":" ~ control_plane_taint.effect %}
{%-   for master in masters %}
{%-     set has_taint = kubectl ~ " get node " ~ master.id
          ~ " -o jsonpath='{range .spec.taints[*]}{.key}:{.effect}{\"\\n\"}{end}'"
          ~ " | grep -qxF '" ~ taint ~ "'" %}
{%-     if cluster.dedicated_master %}

Keep workloads off master {{ master.id }}:
  cmd.run:
    - name: {{ kubectl }} taint node {{ master.id }} {{ taint }} --overwrite
    - unless: {{ has_taint | yaml_dquote }}
{%-     else %}

Allow workloads on master {{ master.id }}:
  cmd.run:
    - name: {{ kubectl }} taint node {{ master.id }} {{ taint }}-
    - onlyif: {{ has_taint | yaml_dquote }}
{%-     endif %}
{%-   endfor %}
{%- endif %}
