{{/* Labels on every object; the selector uses app.kubernetes.io/name only. */}}
{{- define "datum.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: datum
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "datum.image" -}}
{{ .root.Values.image.registry }}/{{ .name }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/* ServiceAccount, ClusterRoleBinding, and the leader-election Role and binding. */}}
{{- define "datum.account" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .name }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .name }}
subjects:
- kind: ServiceAccount
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
---
# The leader-election Lease lives in the release namespace only.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .name }}-leader-election
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}-leader-election
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}-leader-election
subjects:
- kind: ServiceAccount
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
{{- end }}

{{/* What every provider does through the SDK (see config/rbac/provider-sim.yaml). */}}
{{- define "datum.providerRules" -}}
- apiGroups: [compute.datumapis.com]
  resources: [instances]
  verbs: [get, list, watch, patch]
- apiGroups: [compute.datumapis.com]
  resources: [instances/status]
  verbs: [patch]
- apiGroups: [networking.datumapis.com]
  resources: [networkcontexts, subnets]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.datumapis.com]
  resources: [networkcontexts/status, subnets/status]
  verbs: [patch]
- apiGroups: [networking.datumapis.com]
  resources: [locations]
  verbs: [get, list, watch]
- apiGroups: [{{ .provider }}.provider.datum.net]
  resources: [providerconfigs]
  verbs: [get]
{{- end }}

{{- define "datum.eventRules" -}}
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* A Role and binding per credential Secret a provider's ProviderConfig names. */}}
{{- define "datum.credentials" -}}
{{- range .values.credentialsSecrets }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $.name }}-credentials-{{ . }}
  namespace: {{ $.root.Release.Namespace }}
  labels:
    {{- include "datum.labels" $ | nindent 4 }}
rules:
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ . }}]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.name }}-credentials-{{ . }}
  namespace: {{ $.root.Release.Namespace }}
  labels:
    {{- include "datum.labels" $ | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $.name }}-credentials-{{ . }}
subjects:
- kind: ServiceAccount
  name: {{ $.name }}
  namespace: {{ $.root.Release.Namespace }}
{{- end }}
{{- end }}

{{/*
`get` on the ConfigMaps and Secrets a provider's Instances name (volumes, env valueFrom),
bound cluster-wide, or only in .values.volumeNamespaces when that list is set.
*/}}
{{- define "datum.volumes" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .name }}-volumes
  labels:
    {{- include "datum.labels" . | nindent 4 }}
rules:
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get]
{{- if .values.volumeNamespaces }}
{{- range .values.volumeNamespaces }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $.name }}-volumes
  namespace: {{ . }}
  labels:
    {{- include "datum.labels" $ | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $.name }}-volumes
subjects:
- kind: ServiceAccount
  name: {{ $.name }}
  namespace: {{ $.root.Release.Namespace }}
{{- end }}
{{- else }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .name }}-volumes
  labels:
    {{- include "datum.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .name }}-volumes
subjects:
- kind: ServiceAccount
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
{{- end }}
{{- end }}

{{/* The metrics Service. */}}
{{- define "datum.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}-metrics
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
spec:
  selector:
    app.kubernetes.io/name: {{ .name }}
  ports:
  - name: metrics
    port: {{ .values.healthPort }}
    targetPort: metrics
    protocol: TCP
{{- end }}

{{/*
The Deployment. Parameters: name, root, values, args (list), podExtra and containerExtra
(YAML for the Pod spec and the container: volumes, host settings, security context).
*/}}
{{- define "datum.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "datum.labels" . | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
  strategy:
    # One leader at a time: a new Pod only becomes ready once it holds the Lease, so the old
    # one must go first (it releases the Lease on SIGTERM).
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  template:
    metadata:
      labels:
        {{- include "datum.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ .name }}
      {{- with .root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .podExtra }}
      {{- . | nindent 6 }}
      {{- end }}
      # The binaries drain in-flight reconciles on SIGTERM (30 s grace) and release the Lease.
      terminationGracePeriodSeconds: 40
      containers:
      - name: {{ .name }}
        image: {{ include "datum.image" . }}
        imagePullPolicy: {{ .root.Values.image.pullPolicy }}
        args:
          {{- toYaml .args | nindent 10 }}
        env:
        - name: RUST_LOG
          value: {{ .root.Values.logLevel | quote }}
        ports:
        - name: metrics
          containerPort: {{ .values.healthPort }}
          protocol: TCP
        livenessProbe:
          httpGet:
            path: /healthz
            port: metrics
          periodSeconds: 10
          failureThreshold: 3
        readinessProbe:
          httpGet:
            path: /readyz
            port: metrics
          periodSeconds: 5
        resources:
          {{- toYaml .values.resources | nindent 10 }}
        {{- .containerExtra | nindent 8 }}
{{- end }}

{{/* Pod and container security for every component except the local provider. */}}
{{- define "datum.restrictedPod" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end }}
{{- define "datum.restrictedContainer" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end }}
