{#- cert-manager from its upstream release manifest. #}
{%- from "kubesalt/map.jinja" import kubesalt, versions, is_first_master with context %}
{%- from "kubesalt/macros.jinja" import need, wrong_role with context %}
{%- from "kubesalt/addons/manifest.jinja" import upstream_manifest with context %}

{%- if not is_first_master %}
{{ wrong_role("cert-manager is installed from the first master only",
              "is not the first master") }}
{%- else %}
{{- need(["artifacts:cert_manager_manifest", "versions:cert_manager"]) }}
{{ upstream_manifest("cert-manager", "cert_manager_manifest",
                     "cert-manager-" ~ versions.cert_manager ~ ".yaml",
                     kubesalt.addons.cert_manager_namespace) }}
{%- endif %}
