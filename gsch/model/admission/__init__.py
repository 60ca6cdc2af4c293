"""Workload admission: what a request's manifests may do on a member cluster, decided at intake
from the request alone and the operator's rules (no I/O).

- `rules`: the settings, per project (`AdmissionRules`, `ProjectAdmission`) and the verdicts
  (`Violation`);
- `pod_security`: Kubernetes Pod Security Standards on every pod template;
- `workloads`: gsch's own rules on pods and services (node name, tolerate-everything, service
  accounts, external IPs);
- `namespaces`: which namespace a request lands in and whether its project owns it;
- `secrets`: sealing a Secret's data so it never reaches the log in plain text;
- `admit`: all of the above over one request.
"""
