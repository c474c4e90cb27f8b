"""Retrain jobs as Ray Jobs: the job server's address, one submission per event key, status and logs.

Ray Jobs can lose their status when the head restarts and can sit in PENDING, so the store
keeps the authoritative state of a retrain job; Ray's status is only read to reconcile it
(:meth:`Engine.reconcile <workbench.automation._engine.Engine.reconcile>`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, WorkbenchError

if TYPE_CHECKING:
    from workbench.automation._policy import LoopPolicy
    from workbench.stages import Stages

__all__ = ["RayJobs", "RayJobState", "dashboard_url", "resolve_run_as", "runtime_env"]

#: Ray's resource present only on the head node (ray._common.constants.HEAD_NODE_RESOURCE_NAME);
#: asking for a sliver of it pins the entrypoint there, as Ray's own train state actor does
HEAD_RESOURCE = "node:__internal_head__"
#: variables of the submitter forwarded to the job (settings the entrypoint's Stages reads)
_FORWARD_ENV = ("WORKBENCH_STORAGE", "WORKBENCH_HOME")


def _joined_address(stages: Stages) -> str | None:
    """The cluster address the workbench was told to join (None: a private local Ray)."""
    return stages.address or os.environ.get("RAY_ADDRESS") or None


def dashboard_url(stages: Stages) -> str | None:
    """The HTTP address of the job server of the cluster these stages use, or None if it runs none.

    In order: Ray's own ``RAY_API_SERVER_ADDRESS``; the address given to the workbench (an
    ``http://`` address as is, a GCS address looked up in the cluster's key-value store, as
    ``ray job submit`` does); the Ray this process is connected to; ``$RAY_ADDRESS``.
    """
    explicit = os.environ.get("RAY_API_SERVER_ADDRESS")
    if explicit:
        return explicit if "://" in explicit else f"http://{explicit}"
    address = stages.address
    if not address:
        import ray

        if ray.is_initialized():
            if stages.connect().local:
                # A private local Ray this process started runs no dashboard (connect's default),
                # yet its GCS records 127.0.0.1:8265, where another cluster's may listen.
                return None
            return _connected_dashboard()
        address = os.environ.get("RAY_ADDRESS")
    if not address:
        return None
    if address.startswith(("http://", "https://")):
        return address
    if address.startswith("ray://"):
        raise ConfigError(
            f"Ray Jobs need the cluster's job server, not a Ray Client address ({address}): "
            "set RAY_API_SERVER_ADDRESS=http://HEAD:8265, or use LoopPolicy(run_as='inline')."
        )
    return _lookup_dashboard(address)


def _connected_dashboard() -> str | None:
    """The job server of the cluster this process is connected to, from the cluster's own record
    (the dashboard writes its address into the GCS key-value store). A worker's
    ``address_info["webui_url"]`` is not it: in the scheduler actor it read 127.0.0.1:8265, a
    default, while the dashboard listened elsewhere."""
    from ray._private import ray_constants
    from ray.experimental import internal_kv

    value = internal_kv._internal_kv_get(
        ray_constants.DASHBOARD_ADDRESS, namespace=ray_constants.KV_NAMESPACE_DASHBOARD
    )
    return f"http://{value.decode()}" if value else None


def _lookup_dashboard(gcs_address: str) -> str | None:
    import ray

    if ray.is_initialized() and ray.get_runtime_context().gcs_address == gcs_address:
        return _connected_dashboard()
    # What ray.dashboard.utils.ray_address_to_api_server_url reads, without its side effect of
    # re-pointing this process's internal KV at that cluster (this process may be connected to
    # another one).
    from ray._private import ray_constants
    from ray._raylet import GcsClient

    key, namespace = ray_constants.DASHBOARD_ADDRESS, ray_constants.KV_NAMESPACE_DASHBOARD
    try:
        value = GcsClient(address=gcs_address).internal_kv_get(
            key.encode() if isinstance(key, str) else key,
            namespace.encode() if isinstance(namespace, str) else namespace,
            timeout=10,
        )
    except Exception as exc:
        raise ConfigError(
            f"could not reach the Ray cluster at {gcs_address} to find its job server: {exc}. "
            "Check the address, or set RAY_API_SERVER_ADDRESS=http://HEAD:8265."
        ) from exc
    return f"http://{value.decode()}" if value else None


def resolve_run_as(policy: LoopPolicy, stages: Stages) -> str:
    """``policy.run_as``, or where it is None: ``"ray_job"`` on a joined cluster with a job
    server, else ``"inline"`` (see :class:`~workbench.automation.LoopPolicy`)."""
    if policy.run_as is not None:
        return policy.run_as
    if _joined_address(stages) is None:
        return "inline"
    url = dashboard_url(stages)
    return "ray_job" if url and _answers(url) else "inline"


def _answers(url: str) -> bool:
    """Whether a job server answers at ``url``. A local Ray started with its dashboard off still
    records ``127.0.0.1:8265`` in the GCS where nothing listens (seen with Ray 2.60)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=3):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (401 on a token-authenticated cluster)
    except OSError:
        return False


def runtime_env(*, package: bool, storage: str | None = None) -> dict[str, Any]:
    """The job's ``runtime_env``: the installed ``workbench`` package as ``py_modules`` (0.3 MB
    zipped by Ray; the third-party dependencies must be on the cluster's image) and the
    workbench settings of this process; ``storage`` (the submitter's storage root, e.g. from
    ``Workbench(storage=...)``) wins over this process's ``WORKBENCH_STORAGE``."""
    env: dict[str, Any] = {}
    if package:  # the folder of the installed package this module belongs to
        env["py_modules"] = [str(Path(__file__).resolve().parents[1])]
        env["excludes"] = ["__pycache__", "*.pyc"]
    forwarded = {k: os.environ[k] for k in _FORWARD_ENV if os.environ.get(k)}
    if storage:
        forwarded["WORKBENCH_STORAGE"] = storage
    if forwarded:
        env["env_vars"] = forwarded
    return env


def entrypoint(home: str | Path, job_id: int) -> str:
    """The job's shell command; ``python`` is the cluster's (the Ray Job runs it on the head)."""
    import shlex

    return f"python -m workbench.automation.run_job --home {shlex.quote(str(home))} --job-id {int(job_id)}"


@dataclass(frozen=True)
class RayJobState:
    """What Ray says about one submission: ``status`` is None when Ray no longer knows it."""

    submission_id: str
    status: str | None
    message: str = ""


def _auth_headers() -> dict[str, str]:
    """The Ray auth token as an HTTP header, found where Ray looks for it (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``).

    Ray 2.60 clusters require it by default, and ``JobSubmissionClient`` sends it only when this
    process imported Ray with ``RAY_AUTH_MODE=token``; a notebook that imported Ray before knowing
    the cluster would otherwise get 401s. A cluster without authentication ignores the header.
    """
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
        try:
            token = Path(path).read_text().strip()
        except OSError:
            token = ""
    return {"Authorization": f"Bearer {token}"} if token else {}


class RayJobs:
    """The job server of one cluster (``JobSubmissionClient``)."""

    #: how long a submission waits for the head's job agent to register
    agent_wait_s = 60.0

    def __init__(self, url: str):
        from ray.job_submission import JobSubmissionClient

        self.url = url
        try:
            self.client = JobSubmissionClient(url, headers=_auth_headers())
        except Exception as exc:
            raise ConfigError(
                f"could not reach Ray's job server at {url}: {exc}. Start the head with its "
                "dashboard (ray start --head --include-dashboard=true), or use "
                "LoopPolicy(run_as='inline')."
            ) from exc

    @classmethod
    def of(cls, stages: Stages) -> RayJobs:
        url = dashboard_url(stages)
        if url is None or not _answers(url):
            raise ConfigError(
                f"this Ray cluster runs no job server{f' (nothing answers at {url})' if url else ''} "
                "(a local Ray started with its dashboard off): "
                "use LoopPolicy(run_as='inline'), or join a cluster started with "
                "`ray start --head --include-dashboard=true` (Workbench(address=...))."
            )
        return cls(url)

    def submit(
        self,
        submission_id: str,
        *,
        home: str | Path,
        job_id: int,
        num_cpus: float,
        package: bool,
        metadata: dict[str, str] | None = None,
        storage: str | None = None,
    ) -> bool:
        """Submit the retrain job once; False when Ray already has ``submission_id`` (then
        nothing new starts: the earlier submission is the job's run)."""
        import time

        from workbench.runtime import release_parked_trials

        release_parked_trials()  # the job's driver and its trials need the CPUs they hold
        deadline = time.monotonic() + self.agent_wait_s
        while True:
            try:
                self.client.submit_job(
                    entrypoint=entrypoint(home, job_id),
                    submission_id=submission_id,
                    runtime_env=runtime_env(package=package, storage=storage),
                    entrypoint_num_cpus=num_cpus,
                    entrypoint_resources={HEAD_RESOURCE: 0.001},
                    metadata=metadata or {},
                )
                return True
            except RuntimeError as exc:
                if self.state(submission_id).status is not None:
                    return False
                # a head answers 500 "No available agent to submit job, please try again later"
                # until its job agent registers (seconds after a start here), and at times later
                # on a loaded machine
                if "try again later" in str(exc) and time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
                raise WorkbenchError(
                    f"Ray's job server at {self.url} refused retrain job {job_id}: {exc}"
                ) from exc

    def state(self, submission_id: str) -> RayJobState:
        try:
            info = self.client.get_job_info(submission_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                return RayJobState(submission_id, None, str(exc))
            raise
        return RayJobState(submission_id, str(info.status), info.message or "")

    def logs(self, submission_id: str) -> str:
        return str(self.client.get_job_logs(submission_id))

    def list_ids(self) -> list[str]:
        return [j.submission_id for j in self.client.list_jobs() if j.submission_id]
