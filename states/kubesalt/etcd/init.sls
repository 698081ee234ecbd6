{#- An external etcd member on each master, TLS everywhere with the certificates the
    controller issued (each member's certificate carries its address and both server and
    client auth, so it also serves as peer certificate). #}
{%- from "kubesalt/map.jinja" import kubesalt, artifacts, etcd, etcdctl, paths, is_master,
                                     versions with context %}
{%- from "kubesalt/macros.jinja" import need, wrong_role with context %}

{%- if not is_master %}
{{ wrong_role("etcd runs on masters only",
              "is not a master; the etcd stage targets masters only") }}
{%- else %}
{{- need(["artifacts:etcd", "etcd:initial_cluster", "etcd:ca_cert", "etcd:cert", "etcd:key",
          "versions:etcd"]) }}
{%- set tarball = paths.cache_dir ~ "/etcd-" ~ versions.etcd ~ ".tar.gz" %}

Fetch the etcd release:
  file.managed:
    - name: {{ tarball }}
    - source: {{ artifacts.etcd.source }}
    - source_hash: sha256={{ artifacts.etcd.sha256 }}
    - mode: '0644'
    - makedirs: True
    - show_changes: False

# The upstream tarball keeps etcd and etcdctl under etcd-v<version>-linux-<arch>/; a store
# may also hold them at the top. Extract both by base name from wherever they sit, which
# archive.extracted cannot do without knowing the layout. The stamp records which release
# file the binaries came from, so a rerun with the same file changes nothing.
{%- set stamp = paths.cache_dir ~ "/etcd.installed" %}
Install etcd {{ versions.etcd }}:
  cmd.run:
    - name: >-
        tar -xzf {{ tarball }} -C {{ paths.bin_dir }} --no-same-owner
        --wildcards --no-anchored --transform='s,.*/,,' {{ etcd.binaries | join(" ") }}
        && echo {{ artifacts.etcd.sha256 }} > {{ stamp }}
    - unless: >-
        {%- for binary in etcd.binaries %}
        test -x {{ paths.bin_dir }}/{{ binary }} &&
        {%- endfor %}
        grep -qx {{ artifacts.etcd.sha256 }} {{ stamp }}
    - require:
      - file: Fetch the etcd release

Place the etcd CA certificate:
  file.managed:
    - name: {{ etcd.pki_dir }}/ca.crt
    - contents: {{ etcd.ca_cert | yaml_encode }}
    - mode: '0644'
    - makedirs: True

Place the etcd member certificate:
  file.managed:
    - name: {{ etcd.pki_dir }}/server.crt
    - contents: {{ etcd.cert | yaml_encode }}
    - mode: '0644'
    - makedirs: True

Place the etcd member key:
  file.managed:
    - name: {{ etcd.pki_dir }}/server.key
    - contents: {{ etcd.key | yaml_encode }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False

Create the etcd data directory:
  file.directory:
    - name: {{ etcd.data_dir }}
    # etcd refuses a data directory others can read.
    - mode: '0700'
    - makedirs: True

Install the etcd service:
  file.managed:
    - name: {{ paths.systemd_dir }}/etcd.service
    - source: salt://kubesalt/etcd/files/etcd.service.j2
    - template: jinja
    - mode: '0644'

Reload systemd for the etcd unit:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: Install the etcd service

Enable etcd:
  service.enabled:
    - name: etcd
    - require:
      - cmd: Reload systemd for the etcd unit

# etcd is Type=notify and reports ready only once its cluster has quorum, so a
# service.running on the first member would block until the other masters start — and the
# stage starts them in parallel under one timeout. Start without blocking, then wait for
# health below. A restart after a change is also non-blocking for the same reason.
Restart etcd after a change:
  cmd.run:
    - name: systemctl try-restart --no-block etcd
    - onchanges:
      - cmd: Install etcd {{ versions.etcd }}
      - file: Place the etcd CA certificate
      - file: Place the etcd member certificate
      - file: Place the etcd member key
      - file: Install the etcd service
    - require:
      - cmd: Reload systemd for the etcd unit

Start etcd without waiting for quorum:
  cmd.run:
    - name: systemctl start --no-block etcd
    - unless: systemctl is-active --quiet etcd
    - require:
      - service: Enable etcd
      - cmd: Restart etcd after a change
      - file: Create the etcd data directory

Wait for etcd to be healthy:
  cmd.run:
    - name: {{ etcdctl }} endpoint health
    - unless: {{ etcdctl }} endpoint health
    - retry:
        attempts: {{ kubesalt.etcd.health_attempts }}
        interval: {{ kubesalt.etcd.health_interval }}
    - require:
      - cmd: Start etcd without waiting for quorum
{%- endif %}
