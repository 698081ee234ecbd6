{#- Undo kubesalt.os where it can be undone without a reboot's worth of risk: the
    modules-load and sysctl files (the running kernel keeps its settings until the next
    boot) and the proxy's root CA in the trust store. Swap stays off and the fstab entries
    stay commented: turning swap back on is the site's decision. #}
{%- from "kubesalt/map.jinja" import kubesalt with context %}

{%- for path in [kubesalt.os.modules_load_file, kubesalt.os.sysctl_file,
                 kubesalt.trust_store.anchor] %}

Remove {{ path }}:
  file.absent:
    - name: {{ path }}
{%- endfor %}

Forget the proxy root CA:
  cmd.run:
    - name: {{ kubesalt.trust_store.update_cmd }}
    - onchanges:
      - file: Remove {{ kubesalt.trust_store.anchor }}
