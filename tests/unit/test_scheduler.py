"""The operation scheduler's logic: per-node lanes, dependencies, failures that stop only what
depends on them, agents that disconnect or restart, cancel, timeouts."""

from kubesalt.master.ops import lanes, plan
from kubesalt.master.ops.scheduler import Scheduler, job_error
from tests.specs import cluster_spec
from tests.unit.fake_salt import OK, FakeSalt, failed_state

MASTERS = ["m1", "m2", "m3"]
WORKERS = ["w1", "w2"]


def provision_op(nodes=None, storage="none", earlier=None, kind="provision"):
    nodes = nodes or ([{"id": m, "config": {"roles": ["master"]}} for m in MASTERS]
                      + [{"id": w, "config": {"roles": ["worker"]}} for w in WORKERS])
    stages = plan.resolve(cluster_spec(storage=storage), nodes, earlier=earlier, kind=kind)
    return {"id": "op-1", "cluster": "c", "kind": kind, "params": {},
            "stages": [dict(s, state="skipped" if s["skip"] else "pending",
                            error=s["skip"] or None,
                            node_results={n: {"state": "skipped"} for n in s["done_nodes"]})
                       for s in stages]}


def schedule(op, salt, **kwargs):
    tasks = lanes.build(op, MASTERS)
    scheduler = Scheduler(tasks, salt, clock=salt.clock, now=salt.clock, **kwargs)
    scheduler.run()
    return scheduler


def test_every_node_stage_runs_once_and_each_nodes_first_job_syncs_kubesalts_modules():
    salt = FakeSalt(MASTERS + WORKERS)
    scheduler = schedule(provision_op(), salt)
    assert scheduler.failures() == []
    assert {r["state"] for r in scheduler.results.values()} == {"done"}
    jobs = salt.state_jobs()
    assert len(jobs) == len(set(jobs))
    assert ("w1", "kubesalt.kubeadm.join_worker") in jobs
    for node in MASTERS + WORKERS:
        syncs = [kwarg.get("sync_mods") for n, _, _, kwarg in salt.started if n == node]
        assert syncs[0] == "modules,states" and syncs[1:] == [None] * (len(syncs) - 1)


def test_workers_join_once_the_control_plane_is_initialised_and_masters_one_at_a_time():
    salt = FakeSalt(MASTERS + WORKERS)
    schedule(provision_op(), salt)
    jobs = salt.state_jobs()
    at = {job: i for i, job in enumerate(jobs)}
    init = at[("m1", "kubesalt.kubeadm.init")]
    join_m2 = at[("m2", "kubesalt.kubeadm.join_control_plane")]
    join_m3 = at[("m3", "kubesalt.kubeadm.join_control_plane")]
    worker = at[("w1", "kubesalt.kubeadm.join_worker")]
    assert init < join_m2 < join_m3
    assert init < worker < join_m3, "a worker does not wait for the other masters"
    assert at[("m1", "kubesalt.wait_pods")] > max(join_m3, worker)
    # etcd starts on every master together, after every master's consul
    assert max(at[(m, "kubesalt.consul")] for m in MASTERS) < \
        min(at[(m, "kubesalt.etcd")] for m in MASTERS)


def test_a_failed_worker_join_stops_only_what_depends_on_it():
    def answer(node, fun, arg):
        if node == "w2" and arg == ["kubesalt.kubeadm.join_worker"]:
            return {"return": failed_state("kubeadm join: no route to host"), "retcode": 2}
        return {"return": OK, "retcode": 0}

    salt = FakeSalt(MASTERS + WORKERS, answer)
    scheduler = schedule(provision_op(), salt)
    assert scheduler.failures() == [("worker-join", "w2",
                                     "broken: kubeadm join: no route to host")]
    results = scheduler.results
    assert results[("worker-join", "w1")]["state"] == "done"
    for stage in ("control-plane-join", "cni", "taints", "cert-manager"):
        assert all(r["state"] == "done" for k, r in results.items() if k[0] == stage), stage
    assert results[("wait-for-pods", "m1")]["state"] == "pending"
    assert ("m1", "kubesalt.wait_pods") not in salt.state_jobs()


def test_a_rerun_runs_only_what_did_not_finish():
    done = {stage: MASTERS + WORKERS for stage in ("prechecks", "os", "binaries",
                                                   "containerd", "consul")}
    done.update({"etcd": MASTERS, "control-plane-init": ["m1"], "control-plane-join": MASTERS[1:],
                 "cni": ["m1"], "taints": ["m1"], "cert-manager": ["m1"], "worker-join": ["w1"]})
    salt = FakeSalt(MASTERS + WORKERS)
    scheduler = schedule(provision_op(earlier=done), salt)
    assert scheduler.failures() == []
    assert salt.state_jobs() == [("w2", "kubesalt.kubeadm.join_worker"),
                                 ("m1", "kubesalt.wait_pods")]


def test_an_agent_that_disconnects_fails_its_stage_after_the_grace():
    salt = FakeSalt(["m1"], answer=lambda node, fun, arg: None if arg == ["kubesalt.binaries"]
                    else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    node = [{"id": "m1", "config": {"roles": ["master", "worker"]}}]
    op = provision_op(node)
    tasks = lanes.build(op, ["m1"])
    scheduler = Scheduler(tasks, salt, clock=salt.clock, now=salt.clock, grace=20,
                          presence_every=1)
    original = salt.events

    def events(wait):
        if any(arg == ["kubesalt.binaries"] for _, _, arg, _ in salt.started):
            salt.connected_now = set()
        return original(wait)

    salt.events = events
    started = salt.clock.t
    scheduler.run()
    [(stage, failed_node, error)] = scheduler.failures()
    assert (stage, failed_node) == ("binaries", "m1")
    assert error.startswith("agent disconnected: m1's agent")
    assert salt.clock.t - started < 30


def restarting(salt, losses, survived=False):
    """Bus looks that restart m1's agent whenever it runs a job that is not yet known lost:
    the job dies with it `losses` times (unless it `survived`), then runs to its end."""
    original = salt.events
    restarts = []

    def events(wait):
        jobs = list(salt.running)
        if jobs and len(restarts) < max(losses, 1) and jobs[0] not in restarts:
            restarts.append(jobs[0])
            if not survived:
                salt.running.clear()  # the job died with the agent
            return original(wait) + [{"kind": "start", "node": "m1"}]
        if jobs and (survived or len(restarts) >= losses):
            salt.finish(jobs[0], {"return": OK, "retcode": 0})
        return original(wait)

    salt.events = events
    return restarts


def one_node_held_at(sls):
    salt = FakeSalt(["m1"], answer=lambda node, fun, arg: None if arg == [sls]
                    else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    op = provision_op([{"id": "m1", "config": {"roles": ["master", "worker"]}}])
    return salt, Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock)


def test_a_job_that_died_with_its_restarted_agent_is_sent_again_once():
    salt, scheduler = one_node_held_at("kubesalt.containerd")
    restarting(salt, losses=1)
    scheduler.run()
    assert scheduler.failures() == []
    sent = [job for job in salt.state_jobs() if job[1] == "kubesalt.containerd"]
    assert len(sent) == 2 and scheduler.results[("containerd", "m1")]["resent"]


def test_a_job_lost_twice_fails_its_stage_at_once():
    salt, scheduler = one_node_held_at("kubesalt.containerd")
    restarting(salt, losses=2)
    started = salt.clock.t
    scheduler.run()
    [(stage, _, error)] = scheduler.failures()
    assert stage == "containerd" and error.startswith("agent restarted: m1's agent")
    assert salt.clock.t - started < 10


def test_a_job_that_survived_its_agents_restart_is_followed():
    salt, scheduler = one_node_held_at("kubesalt.containerd")
    restarting(salt, losses=1, survived=True)
    scheduler.run()
    assert scheduler.failures() == []
    assert [job for job in salt.state_jobs() if job[1] == "kubesalt.containerd"] == \
        [("m1", "kubesalt.containerd")]


def test_a_return_missed_on_the_bus_is_read_from_the_job_cache():
    salt = FakeSalt(["m1"], answer=lambda node, fun, arg: None if arg == ["kubesalt.os"]
                    else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    op = provision_op([{"id": "m1", "config": {"roles": ["master", "worker"]}}])
    scheduler = Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock)
    original = salt.events

    def events(wait):
        for jid, node in list(salt.running.items()):
            salt.running.pop(jid)
            salt.cache[(jid, node)] = {"return": OK, "retcode": 0}
            return original(wait) + [{"kind": "start", "node": node}]
        return original(wait)

    salt.events = events
    scheduler.run()
    assert scheduler.failures() == []


def test_cancel_kills_the_running_jobs_and_starts_nothing_more():
    salt = FakeSalt(MASTERS + WORKERS, answer=lambda node, fun, arg: None
                    if arg == ["kubesalt.binaries"] and node == "m1"
                    else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    asked = []
    scheduler = schedule(provision_op(), salt,
                         cancelled=lambda: asked.append(1) or len(asked) > 20)
    results = scheduler.results
    assert results[("binaries", "m1")]["state"] == "cancelled"
    assert "cancelled by the operator" in results[("binaries", "m1")]["error"]
    assert ("m1", results[("binaries", "m1")]["jid"]) in salt.killed
    assert not any(r["state"] == "running" for r in results.values())
    assert results[("etcd", "m1")]["state"] == "pending"


def test_a_job_that_outlives_its_stage_timeout_is_killed_and_fails():
    salt = FakeSalt(["m1"], answer=lambda node, fun, arg: None if arg == ["kubesalt.prechecks"]
                    else {"return": {}, "retcode": 0})
    op = provision_op([{"id": "m1", "config": {"roles": ["master", "worker"]}}])
    scheduler = Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock)
    scheduler.run()
    [(stage, node, error)] = scheduler.failures()
    assert (stage, node) == ("prechecks", "m1") and "within 120 s" in error
    assert salt.killed and salt.killed[0][0] == "m1"


def test_every_run_syncs_on_its_first_job_even_after_a_failed_one():
    answers = iter([{"return": failed_state("no"), "retcode": 2}])

    def answer(node, fun, arg):
        return next(answers, {"return": OK, "retcode": 0})

    salt = FakeSalt(["m1"], answer)
    op = provision_op([{"id": "m1", "config": {"roles": ["master", "worker"]}}])
    Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock).run()
    assert [k.get("sync_mods") for _, _, _, k in salt.started] == ["modules,states"]
    op["stages"][0]["state"] = "skipped"
    Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock).run()
    assert salt.started[1][3]["sync_mods"] == "modules,states"
    assert "sync_mods" not in salt.started[2][3]


def test_a_node_whose_key_is_gone_fails_its_first_stage():
    salt = FakeSalt(["m1", "m2", "m3", "w1"])
    scheduler = schedule(provision_op(), salt)
    failures = scheduler.failures()
    assert [(s, n) for s, n, _ in failures] == [("prechecks", "w2")]
    assert "w2" in failures[0][2]


def test_drained_stages_drain_from_the_first_master_around_each_node():
    nodes = [{"id": "m1", "config": {"roles": ["master"]}},
             {"id": "w1", "config": {"roles": ["worker"]}},
             {"id": "w2", "config": {"roles": ["worker"]}}]
    op = provision_op(nodes, kind="upgrade")
    op["params"] = {"from": "1.29.14", "to": "1.30.10"}
    salt = FakeSalt(["m1", "w1", "w2"])
    Scheduler(lanes.build(op, ["m1"]), salt, clock=salt.clock, now=salt.clock).run()
    jobs = [(node, arg[0], kwarg["pillar"]["kubesalt_op"].get("node"))
            for node, fun, arg, kwarg in salt.started if fun == "state.sls"]
    workers = jobs[jobs.index(("m1", "kubesalt.kubeadm.drain", "w1")):][:6]
    assert workers == [("m1", "kubesalt.kubeadm.drain", "w1"), ("w1", "kubesalt.upgrade", "w1"),
                       ("m1", "kubesalt.kubeadm.uncordon", "w1"),
                       ("m1", "kubesalt.kubeadm.drain", "w2"), ("w2", "kubesalt.upgrade", "w2"),
                       ("m1", "kubesalt.kubeadm.uncordon", "w2")]


def test_critical_path_follows_the_longest_chain():
    tasks = {("a", "n"): lanes.Task("a", "n", [], 1), ("b", "n"): lanes.Task("b", "n", [], 1),
             ("c", "m"): lanes.Task("c", "m", [], 1)}
    tasks[("b", "n")].needs = {("a", "n")}
    seconds, chain = lanes.critical_path({("a", "n"): (0, 2), ("b", "n"): (3, 4),
                                          ("c", "m"): (0, 2.5)}, tasks)
    assert seconds == 3 and chain == [("a", "n"), ("b", "n")]


def test_job_errors():
    assert job_error({"fun": "state.sls", "return": OK, "retcode": 0}) is None
    assert job_error({"fun": "state.sls", "return": ["Rendering SLS failed: x"],
                      "retcode": 1}) == "Rendering SLS failed: x"
    assert job_error({"fun": "state.sls", "return": failed_state("no"), "retcode": 2}) == \
        "broken: no"
    assert job_error({"fun": "saltutil.sync_all", "return": {"modules": []},
                      "retcode": 0}) is None
    assert job_error({"fun": "saltutil.sync_all", "return": "Traceback...\nOSError: disk",
                      "retcode": 1, "success": False}) == "OSError: disk"
