"""Render SLS files with Salt's own state compiler, in-process and without daemons: one
HighState per OS family (a masterless minion whose file_roots is states/), pillar and grains
swapped per configuration. Much faster than a salt-call per render."""

import contextlib
import copy
import logging
from pathlib import Path

import jinja2
import salt.config
import salt.loader.lazy
import salt.state
import salt.utils.templates

STATES_DIR = Path(__file__).resolve().parents[2] / "states"


class Renderer:
    def __init__(self, root, grains):
        opts = salt.config.minion_config(None)
        opts.update(
            file_client="local", file_roots={"base": [str(STATES_DIR)]},
            pillar_roots={"base": []}, root_dir=str(root), cachedir=str(root / "cache"),
            pki_dir=str(root / "pki"), sock_dir=str(root / "sock"),
            log_file=str(root / "minion.log"), id=grains["id"], state_events=False,
        )
        opts["grains"] = copy.deepcopy(grains)
        opts["pillar"] = {}
        self.opts = opts
        self.highstate = salt.state.HighState(opts)

    def close(self):
        self.highstate.destroy()

    def _configure(self, grains, pillar):
        """Point every loader of the compiler at this configuration's grains and pillar.
        Each LazyLoader packs its own reference (`__pillar__`, `__grains__`) when it is
        created, so changing opts alone leaves pillar.get and grains.get reading the first
        configuration."""
        grains, pillar = copy.deepcopy(grains), copy.deepcopy(pillar)
        state = self.highstate.state
        state.opts["grains"], state.opts["pillar"] = grains, pillar
        for holder in (state, self.highstate):
            for value in vars(holder).values():
                # FilterDictWrapper (the renderers) keeps its loader in _dict.
                loader = value if isinstance(value, salt.loader.lazy.LazyLoader) \
                    else getattr(value, "_dict", None)
                if isinstance(loader, salt.loader.lazy.LazyLoader):
                    loader.pack["__grains__"], loader.pack["__pillar__"] = grains, pillar
                    loader.opts["grains"], loader.opts["pillar"] = grains, pillar

    def render(self, sls, grains, pillar):
        """(high data, errors) of one SLS, as `state.show_sls` compiles it."""
        self._configure(grains, pillar)
        hs = self.highstate
        hs.building_highstate = {}
        high, errors = hs.render_highstate({"base": [sls]})
        if errors:
            return high, list(errors)
        errors = list(hs.state.verify_high(high))
        high, req_errors = hs.state.requisite_in(high)
        errors.extend(req_errors)
        return high, errors

    def render_template(self, source, sls):
        """Render a salt://kubesalt/... template as file.managed would on the node."""
        path = STATES_DIR / source.removeprefix("salt://")
        state = self.highstate.state
        result = salt.utils.templates.JINJA(
            str(path), to_str=True, salt=state.functions, grains=state.opts["grains"],
            pillar=state.opts["pillar"], opts=state.opts, saltenv="base", sls=sls,
            tpldir=str(Path(source.removeprefix("salt://")).parent),
            fileclient=self.highstate.client,
        )
        if not result["result"]:
            raise AssertionError(f"{source} does not render: {result['data']}")
        return result["data"]


def flatten(high):
    """{state id: {"fun": "file.managed", "args": {...}, "sls": ...}} from high data."""
    out = {}
    for state_id, body in high.items():
        if state_id.startswith("__"):
            continue
        for module, chunks in body.items():
            if module.startswith("__"):
                continue
            args, fun = {}, None
            for chunk in chunks:
                if isinstance(chunk, str):
                    fun = chunk
                elif isinstance(chunk, dict):
                    args.update(chunk)
            out[state_id] = {"fun": f"{module}.{fun}", "args": args, "sls": body.get("__sls__")}
    return out


@contextlib.contextmanager
def quiet_salt_logs():
    """Render errors come back as data; Salt also logs them at CRITICAL, through handlers
    that outlive pytest's captured streams."""
    logger = logging.getLogger("salt")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _code_key(value):
    """What identifies a callable option's behaviour: Salt binds a fresh SerializerExtension
    (and so a fresh `finalize` method) per environment, with the same code."""
    function = getattr(value, "__func__", value)
    if callable(function):
        return (function.__module__, function.__qualname__)
    return repr(value)


@contextlib.contextmanager
def compile_cache():
    """Reuse Jinja's compiled code across renders. Salt builds a new Jinja environment for
    every render, so each SLS and each import of map.jinja is compiled again: two thirds of
    the matrix's time. The key is the template source and every environment option that
    changes compilation, so what renders is exactly what an uncached run renders."""
    original = jinja2.Environment.compile
    cache = {}

    def compile_(self, source, name=None, filename=None, raw=False, defer_init=False):
        key = (source, name, filename, raw, defer_init, self.block_start_string,
               self.block_end_string, self.variable_start_string, self.variable_end_string,
               self.comment_start_string, self.comment_end_string,
               self.line_statement_prefix, self.line_comment_prefix, self.trim_blocks,
               self.lstrip_blocks, self.newline_sequence, self.keep_trailing_newline,
               tuple(sorted(self.extensions)), self.optimized, _code_key(self.autoescape),
               _code_key(self.finalize))
        if key not in cache:
            cache[key] = original(self, source, name, filename, raw, defer_init)
        return cache[key]

    jinja2.Environment.compile = compile_
    try:
        yield
    finally:
        jinja2.Environment.compile = original


def render_matrix(os_name, root, configurations):
    """Render every configuration's SLS (and the templates its file states use) for one OS
    family in this process. Returns one record per (configuration, SLS)."""
    configurations = list(configurations)
    renderer = Renderer(Path(root), configurations[0]["grains"])
    records = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(compile_cache())
        stack.callback(renderer.close)
        for conf in configurations:
            for sls in conf["sls"]:
                high, errors = renderer.render(sls, conf["grains"], conf["pillar"])
                states = flatten(high) if not errors else {}
                templates = {}
                for state_id, state in states.items():
                    args = state["args"]
                    if args.get("template") == "jinja" and str(args.get("source", "")) \
                            .startswith("salt://kubesalt/"):
                        try:
                            templates[state_id] = renderer.render_template(args["source"], sls)
                        except AssertionError as exc:
                            errors.append(str(exc))
                key = {k: conf[k] for k in ("os", "type", "cni", "proxy", "node", "role")}
                records.append({**key, "sls": sls, "errors": [str(e) for e in errors],
                                "states": states, "templates": templates,
                                "pillar": conf["pillar"]})
    return records
