{#- The last stage before READY: every pod of the cluster is Ready. Pods of finished Jobs
    (cert-manager's startup check, rook's OSD preparation) never become Ready, so pods that
    Succeeded are left out. #}
{%- from "kubesalt/map.jinja" import kubesalt, kubectl, is_first_master with context %}
{%- from "kubesalt/macros.jinja" import wrong_role with context %}

{%- if not is_first_master %}
{{ wrong_role("Pods are awaited from the first master only", "is not the first master") }}
{%- else %}
{%-   set wait = kubectl ~ " wait --for=condition=Ready pods --all --all-namespaces"
                 ~ " --field-selector=status.phase!=Succeeded" %}

Wait for every pod to be ready:
  cmd.run:
    - name: {{ wait }} --timeout={{ kubesalt.wait_pods.timeout }}
    # --timeout=0s checks once: a cluster that is already ready changes nothing.
    - unless: {{ wait }} --timeout=0s
    - retry:
        attempts: {{ kubesalt.wait_pods.attempts }}
        interval: {{ kubesalt.wait_pods.interval }}
{%- endif %}
