"""Kubernetes Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards,
the controls of `latest` as of Kubernetes 1.34), checked on one pod template.

Every check is an allow-list: a field holding anything but an allowed value (a wrong type
included) is a violation, because the member cluster's own decoding must not be what stands
between a tenant and the node. Each violation names the field and the control, and the level
that defines the control (a privileged container is forbidden by "baseline", also for a project
at "restricted"). Where the standard is looser than this code (optional SELinux types, sysctls
added in later releases) this code refuses: a pod the cluster would take may be refused here,
never the other way round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gsch.model.admission.rules import PodSecurityLevel, Violation

BASELINE = PodSecurityLevel.BASELINE
RESTRICTED = PodSecurityLevel.RESTRICTED

# Capabilities a baseline container may add (the container runtimes' default set).
BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
     "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)  # fmt: skip
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
     "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
     "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
     "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
)  # fmt: skip
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})  # seccomp and AppArmor alike
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
     "projected", "secret"}
)  # fmt: skip
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("postStart", "preStop")


@dataclass(frozen=True)
class PodTemplate:
    """One pod template of a manifest: its spec and metadata, and where they are."""

    spec: dict[str, Any]
    metadata: dict[str, Any]
    path: str  # e.g. "workload[0].spec.template.spec"
    metadata_path: str
    # Every check walks the containers and security contexts: found (and their paths
    # formatted) once per template, not once per check — 19 checks read them per request.
    _containers: tuple[tuple[str, dict[str, Any]], ...] = dataclasses.field(init=False, repr=False)
    _contexts: tuple[tuple[str, dict[str, Any]], ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        containers = tuple(
            (f"{self.path}.{key}[{index}]", item)
            for key in CONTAINER_LISTS
            if isinstance(items := self.spec.get(key), list)
            for index, item in enumerate(items)
            if isinstance(item, dict)
        )
        contexts = (
            (f"{self.path}.securityContext", _object(self.spec.get("securityContext"))),
            *(
                (f"{where}.securityContext", _object(container.get("securityContext")))
                for where, container in containers
            ),
        )
        object.__setattr__(self, "_containers", containers)
        object.__setattr__(self, "_contexts", contexts)

    def containers(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return self._containers

    def security_contexts(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        """The pod's security context, then each container's (those that have one)."""
        return self._contexts

    @property
    def windows(self) -> bool:
        return _object(self.spec.get("os")).get("name") == "windows"


def _object(value: Any) -> dict[str, Any]:
    """A nested object, or {} when absent. Wrong types were refused by `shape_violations`."""
    return value if isinstance(value, dict) else {}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _forbidden(level: PodSecurityLevel, control: str, detail: str = "") -> str:
    suffix = f": {detail}" if detail else ""
    return f'forbidden by Pod Security Standard "{level}" ({control}){suffix}'


def _required(what: str, level: PodSecurityLevel, control: str) -> str:
    return f'must be {what} under Pod Security Standard "{level}" ({control})'


def _unset_or_false(value: Any) -> bool:
    return value is None or value is False


# --- shape: the objects the checks read must be objects -----------------------------------

_OBJECTS_IN_SECURITY_CONTEXT = ("capabilities", "seLinuxOptions", "seccompProfile",
                                "appArmorProfile", "windowsOptions")  # fmt: skip


def shape_violations(template: PodTemplate) -> Iterator[Violation]:
    """Objects and lists the checks read, holding another type: refused rather than skipped,
    so a malformed field cannot hide a forbidden value from the checks."""
    spec = template.spec
    for key in (*CONTAINER_LISTS, "volumes"):
        items = spec.get(key)
        if items is not None and not isinstance(items, list):
            yield Violation(f"{template.path}.{key}", "must be a list")
        elif items is not None:
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    yield Violation(f"{template.path}.{key}[{index}]", "must be an object")
    for key in ("securityContext", "os"):
        if spec.get(key) is not None and not isinstance(spec.get(key), dict):
            yield Violation(f"{template.path}.{key}", "must be an object")
    for where, container in template.containers():
        context = container.get("securityContext")
        if context is not None and not isinstance(context, dict):
            yield Violation(f"{where}.securityContext", "must be an object")
    for where, context in template.security_contexts():
        for key in _OBJECTS_IN_SECURITY_CONTEXT:
            if context.get(key) is not None and not isinstance(context.get(key), dict):
                yield Violation(f"{where}.{key}", "must be an object")
    annotations = template.metadata.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        yield Violation(f"{template.metadata_path}.annotations", "must be an object")


# --- baseline ------------------------------------------------------------------------------


def _host_process(template: PodTemplate) -> Iterator[Violation]:
    for where, context in template.security_contexts():
        value = _object(context.get("windowsOptions")).get("hostProcess")
        if not _unset_or_false(value):
            yield Violation(
                f"{where}.windowsOptions.hostProcess", _forbidden(BASELINE, "HostProcess")
            )


def _host_namespaces(template: PodTemplate) -> Iterator[Violation]:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if not _unset_or_false(template.spec.get(key)):
            yield Violation(f"{template.path}.{key}", _forbidden(BASELINE, "Host Namespaces"))


def _privileged(template: PodTemplate) -> Iterator[Violation]:
    for where, container in template.containers():
        value = _object(container.get("securityContext")).get("privileged")
        if not _unset_or_false(value):
            control = "Privileged Containers"
            yield Violation(f"{where}.securityContext.privileged", _forbidden(BASELINE, control))


def _added_capabilities(
    template: PodTemplate, allowed: frozenset[str], level: PodSecurityLevel
) -> Iterator[Violation]:
    """Added capabilities outside `allowed`; at restricted, only those baseline allows (the
    others were refused by baseline already: once is enough)."""
    for where, container in template.containers():
        capabilities = _object(_object(container.get("securityContext")).get("capabilities"))
        added = capabilities.get("add")
        field = f"{where}.securityContext.capabilities.add"
        if added is None:
            continue
        if not isinstance(added, list):
            if level is BASELINE:
                yield Violation(field, "must be a list")
            continue
        for index, name in enumerate(added):
            reported_by_baseline = level is not BASELINE and name not in BASELINE_CAPABILITIES
            if name not in allowed and not reported_by_baseline:
                detail = f"adds {_shown(name)}"
                yield Violation(f"{field}[{index}]", _forbidden(level, "Capabilities", detail))


def _baseline_capabilities(template: PodTemplate) -> Iterator[Violation]:
    return _added_capabilities(template, BASELINE_CAPABILITIES, BASELINE)


def _restricted_capabilities(template: PodTemplate) -> Iterator[Violation]:
    if template.windows:
        return iter(())
    return _added_capabilities(template, RESTRICTED_CAPABILITIES, RESTRICTED)


def _host_path(template: PodTemplate) -> Iterator[Violation]:
    for index, volume in enumerate(template.spec.get("volumes") or ()):
        if isinstance(volume, dict) and volume.get("hostPath") is not None:
            field = f"{template.path}.volumes[{index}].hostPath"
            yield Violation(field, _forbidden(BASELINE, "HostPath Volumes"))


def _host_ports(template: PodTemplate) -> Iterator[Violation]:
    for where, container in template.containers():
        ports = container.get("ports")
        if ports is None:
            continue
        if not isinstance(ports, list):
            yield Violation(f"{where}.ports", "must be a list")
            continue
        for index, port in enumerate(ports):
            value = _object(port).get("hostPort")
            if value is not None and value != 0:
                field = f"{where}.ports[{index}].hostPort"
                yield Violation(field, _forbidden(BASELINE, "Host Ports"))


def _host_probes(template: PodTemplate) -> Iterator[Violation]:
    for where, container in template.containers():
        lifecycle = _object(container.get("lifecycle"))
        handlers = [(probe, container.get(probe)) for probe in PROBES]
        handlers += [(f"lifecycle.{h}", lifecycle.get(h)) for h in HANDLERS]
        for name, handler in handlers:
            if handler is None:
                continue  # most containers have none: no path is formatted for them
            for action in ("httpGet", "tcpSocket"):
                host = _object(_object(handler).get(action)).get("host")
                if host is not None and host != "":
                    control = "Host Probes / Lifecycle Hooks"
                    field = f"{where}.{name}.{action}.host"
                    yield Violation(field, _forbidden(BASELINE, control))


def _annotations(template: PodTemplate) -> Iterator[tuple[str, str, Any]]:
    for key, value in _object(template.metadata.get("annotations")).items():
        yield f"{template.metadata_path}.annotations[{key!r}]", str(key), value


def _app_armor(template: PodTemplate) -> Iterator[Violation]:
    for where, context in template.security_contexts():
        kind = _object(context.get("appArmorProfile")).get("type")
        if kind is not None and kind not in PROFILE_TYPES:
            detail = f"type {_shown(kind)}"
            field = f"{where}.appArmorProfile.type"
            yield Violation(field, _forbidden(BASELINE, "AppArmor", detail))
    for field, key, value in _annotations(template):
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default"
            or (isinstance(value, str) and value.startswith("localhost/"))
        ):
            yield Violation(field, _forbidden(BASELINE, "AppArmor", f"profile {_shown(value)}"))


def _selinux(template: PodTemplate) -> Iterator[Violation]:
    for where, context in template.security_contexts():
        options = _object(context.get("seLinuxOptions"))
        kind = options.get("type")
        if kind is not None and kind not in SELINUX_TYPES:
            detail = f"type {_shown(kind)}"
            yield Violation(f"{where}.seLinuxOptions.type", _forbidden(BASELINE, "SELinux", detail))
        for key in ("user", "role"):
            if options.get(key) not in (None, ""):
                yield Violation(f"{where}.seLinuxOptions.{key}", _forbidden(BASELINE, "SELinux"))


def _proc_mount(template: PodTemplate) -> Iterator[Violation]:
    for where, container in template.containers():
        value = _object(container.get("securityContext")).get("procMount")
        if value not in (None, "Default"):
            field = f"{where}.securityContext.procMount"
            yield Violation(field, _forbidden(BASELINE, "/proc Mount Type", _shown(value)))


def _seccomp_baseline(template: PodTemplate) -> Iterator[Violation]:
    for where, context in template.security_contexts():
        if _object(context.get("seccompProfile")).get("type") == "Unconfined":
            field = f"{where}.seccompProfile.type"
            yield Violation(field, _forbidden(BASELINE, "Seccomp", "Unconfined"))
    for field, key, value in _annotations(template):
        legacy = key == SECCOMP_POD_ANNOTATION or key.startswith(SECCOMP_CONTAINER_ANNOTATION)
        if legacy and value == "unconfined":
            yield Violation(field, _forbidden(BASELINE, "Seccomp", "unconfined"))


def _sysctls(template: PodTemplate) -> Iterator[Violation]:
    sysctls = _object(template.spec.get("securityContext")).get("sysctls")
    field = f"{template.path}.securityContext.sysctls"
    if sysctls is None:
        return
    if not isinstance(sysctls, list):
        yield Violation(field, "must be a list")
        return
    for index, sysctl in enumerate(sysctls):
        name = _object(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            detail = _shown(name)
            yield Violation(f"{field}[{index}].name", _forbidden(BASELINE, "Sysctls", detail))


# --- restricted ----------------------------------------------------------------------------


def _volume_types(template: PodTemplate) -> Iterator[Violation]:
    for index, volume in enumerate(template.spec.get("volumes") or ()):
        for key in sorted(_object(volume)):
            if key != "name" and key not in RESTRICTED_VOLUMES and key != "hostPath":
                field = f"{template.path}.volumes[{index}].{key}"
                yield Violation(field, _forbidden(RESTRICTED, "Volume Types"))


def _privilege_escalation(template: PodTemplate) -> Iterator[Violation]:
    if template.windows:
        return
    for where, container in template.containers():
        value = _object(container.get("securityContext")).get("allowPrivilegeEscalation")
        if value is not False:
            field = f"{where}.securityContext.allowPrivilegeEscalation"
            yield Violation(field, _required("false", RESTRICTED, "Privilege Escalation"))


def _run_as_non_root(template: PodTemplate) -> Iterator[Violation]:
    control = "Running as Non-root"
    pod_level = _object(template.spec.get("securityContext")).get("runAsNonRoot")
    if not (pod_level is None or pod_level is True):
        field = f"{template.path}.securityContext.runAsNonRoot"
        yield Violation(field, _required("true", RESTRICTED, control))
        return
    for where, container in template.containers():
        value = _object(container.get("securityContext")).get("runAsNonRoot")
        if value is True or (value is None and pod_level is True):
            continue
        what = "true" if value is not None else "true (here or in the pod's securityContext)"
        yield Violation(
            f"{where}.securityContext.runAsNonRoot", _required(what, RESTRICTED, control)
        )


def _run_as_user(template: PodTemplate) -> Iterator[Violation]:
    for where, context in template.security_contexts():
        user = context.get("runAsUser")
        if user is not None and (not isinstance(user, int) or isinstance(user, bool) or user == 0):
            control = "Running as Non-root user"
            yield Violation(f"{where}.runAsUser", _forbidden(RESTRICTED, control, _shown(user)))


def _seccomp_restricted(template: PodTemplate) -> Iterator[Violation]:
    if template.windows:
        return
    control = "Seccomp"
    pod_type = _object(_object(template.spec.get("securityContext")).get("seccompProfile")).get(
        "type"
    )
    pod_set = pod_type in PROFILE_TYPES
    for where, container in template.containers():
        context = _object(container.get("securityContext"))
        kind = _object(context.get("seccompProfile")).get("type")
        if kind in PROFILE_TYPES or (kind is None and pod_set):
            continue
        if kind == "Unconfined":
            continue  # already refused by baseline, once is enough
        what = "RuntimeDefault or Localhost" + ("" if kind else " (here or in the pod's)")
        yield Violation(f"{where}.securityContext.seccompProfile.type",
                        _required(what, RESTRICTED, control))  # fmt: skip


def _drop_all(template: PodTemplate) -> Iterator[Violation]:
    if template.windows:
        return
    for where, container in template.containers():
        capabilities = _object(_object(container.get("securityContext")).get("capabilities"))
        dropped = capabilities.get("drop")
        if not (isinstance(dropped, list) and "ALL" in dropped):
            field = f"{where}.securityContext.capabilities.drop"
            yield Violation(field, _required('a list with "ALL"', RESTRICTED, "Capabilities"))


Check = Callable[[PodTemplate], Iterator[Violation]]

# Each control with the level that introduces it; a level enforces its own and those below.
CHECKS: tuple[tuple[PodSecurityLevel, Check], ...] = (
    (BASELINE, _host_process),
    (BASELINE, _host_namespaces),
    (BASELINE, _privileged),
    (BASELINE, _baseline_capabilities),
    (BASELINE, _host_path),
    (BASELINE, _host_ports),
    (BASELINE, _host_probes),
    (BASELINE, _app_armor),
    (BASELINE, _selinux),
    (BASELINE, _proc_mount),
    (BASELINE, _seccomp_baseline),
    (BASELINE, _sysctls),
    (RESTRICTED, _volume_types),
    (RESTRICTED, _privilege_escalation),
    (RESTRICTED, _run_as_non_root),
    (RESTRICTED, _run_as_user),
    (RESTRICTED, _seccomp_restricted),
    (RESTRICTED, _drop_all),
    (RESTRICTED, _restricted_capabilities),
)


def pod_security_violations(template: PodTemplate, level: PodSecurityLevel) -> list[Violation]:
    """Every violation of `level` in one pod template (none at "privileged")."""
    if level is PodSecurityLevel.PRIVILEGED:
        return []
    shape = list(shape_violations(template))
    if shape:
        return shape
    return [violation for check in _CHECKS_OF[level] for violation in check(template)]


# The checks each level enforces, in `CHECKS` order (looked up once per template).
_CHECKS_OF: dict[PodSecurityLevel, tuple[Check, ...]] = {
    level: tuple(check for control_level, check in CHECKS if level.rank >= control_level.rank)
    for level in PodSecurityLevel
}
