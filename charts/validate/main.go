// Command validate checks the manifests that `helm template` prints against the Kubernetes API
// types, offline. kubeconform would need its JSON schemas from GitHub, which this project's
// machines cannot reach; the typed structs in k8s.io/api are the same schema, compiled in.
//
//	helm template charts/telegate | validate
//
// Each YAML document is decoded strictly (case-sensitive, no unknown or duplicate fields, every
// value of its declared type) into the struct of its apiVersion/kind; a kind this program does
// not know is an error, so a typo in apiVersion cannot slip through. The Prometheus operator's
// ServiceMonitor is a CRD without Go types here: it gets a minimal struct of the fields the chart
// uses. Then the objects are checked against each other (selectors select the pods, named ports
// exist, the HPA and PDB point at the StatefulSet), which a per-object schema cannot see.
//
// Exit status: 0 when every document passes, 1 with one line per problem otherwise.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// serviceMonitor is monitoring.coreos.com/v1 ServiceMonitor, reduced to the fields the chart
// renders; strict decoding into it rejects anything else, which is the point: a field the chart
// adds must be added here deliberately, after checking the operator's CRD.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		JobLabel  string `json:"jobLabel,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			HonorLabels   bool   `json:"honorLabels,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

var serviceMonitorKind = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// object is one decoded document and where it came from, for messages.
type object struct {
	where string
	value any
}

func main() {
	input, err := io.ReadAll(bufio.NewReader(os.Stdin))
	if err != nil {
		fmt.Fprintln(os.Stderr, "validate: reading stdin:", err)
		os.Exit(1)
	}
	objects, problems := decodeAll(input)
	problems = append(problems, crossCheck(objects)...)
	for _, problem := range problems {
		fmt.Println("validate:", problem)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	if len(objects) == 0 {
		fmt.Println("validate: no Kubernetes objects on stdin")
		os.Exit(1)
	}
	kinds := map[string]int{}
	for _, o := range objects {
		kinds[strings.SplitN(o.where, "/", 2)[0]]++
	}
	var summary []string
	for kind, n := range kinds {
		summary = append(summary, fmt.Sprintf("%d %s", n, kind))
	}
	sort.Strings(summary)
	fmt.Printf("validate: %d objects valid (%s)\n", len(objects), strings.Join(summary, ", "))
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	// Only the GA versions: a deprecated or removed apiVersion (policy/v1beta1, autoscaling/v2beta2)
	// is then an unknown kind.
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err) // the scheme is built from compiled-in types: failing here is a programming error
		}
	}
	return scheme
}

// splitDocuments cuts a YAML stream at its "---" separator lines.
func splitDocuments(input []byte) [][]byte {
	var docs [][]byte
	var current bytes.Buffer
	for _, line := range bytes.SplitAfter(input, []byte("\n")) {
		if trimmed := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(trimmed, []byte("--- ")) {
			docs = append(docs, bytes.Clone(current.Bytes()))
			current.Reset()
			continue
		}
		current.Write(line)
	}
	return append(docs, current.Bytes())
}

func decodeAll(input []byte) ([]object, []string) {
	scheme := newScheme()
	var objects []object
	var problems []string
	for i, doc := range splitDocuments(input) {
		where := fmt.Sprintf("document %d", i)
		if source := sourceComment(doc); source != "" {
			where += " (" + source + ")"
		}
		data, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: not valid YAML: %v", where, err))
			continue
		}
		if string(bytes.TrimSpace(data)) == "null" {
			continue // only comments, as helm prints for a template that rendered nothing
		}
		var meta metav1.TypeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &meta); err != nil {
			problems = append(problems, fmt.Sprintf("%s: not a Kubernetes object: %v", where, err))
			continue
		}
		gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
		var value any
		switch {
		case scheme.Recognizes(gvk):
			value, _ = scheme.New(gvk)
		case gvk == serviceMonitorKind:
			value = &serviceMonitor{}
		default:
			problems = append(problems, fmt.Sprintf("%s: unknown kind %q in apiVersion %q", where, meta.Kind, meta.APIVersion))
			continue
		}
		strict, err := kjson.UnmarshalStrict(data, value, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", where, meta.Kind, err))
			continue
		}
		name := value.(metav1.Object).GetName()
		where = meta.Kind + "/" + name
		for _, e := range strict {
			problems = append(problems, fmt.Sprintf("%s: %v", where, e))
		}
		problems = append(problems, checkMeta(where, meta.Kind, value.(metav1.Object))...)
		objects = append(objects, object{where: where, value: value})
	}
	return objects, problems
}

// sourceComment returns the "# Source: chart/templates/x.yaml" path helm puts on each document.
func sourceComment(doc []byte) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(line, "# Source: "); ok {
			return rest
		}
	}
	return ""
}

func checkMeta(where, kind string, meta metav1.Object) []string {
	var problems []string
	nameErrors := validation.IsDNS1123Subdomain(meta.GetName())
	if kind == "Service" {
		nameErrors = validation.IsDNS1035Label(meta.GetName())
	}
	for _, e := range nameErrors {
		problems = append(problems, fmt.Sprintf("%s: metadata.name: %s", where, e))
	}
	problems = append(problems, checkLabels(where+": metadata.labels", meta.GetLabels())...)
	return problems
}

func checkLabels(where string, set map[string]string) []string {
	var problems []string
	for key, value := range set {
		for _, e := range validation.IsQualifiedName(key) {
			problems = append(problems, fmt.Sprintf("%s: key %q: %s", where, key, e))
		}
		for _, e := range validation.IsValidLabelValue(value) {
			problems = append(problems, fmt.Sprintf("%s: %q: %s", where, key, e))
		}
	}
	return problems
}

// crossCheck checks what only the set of objects shows: that the Services, PDB, HPA, Ingress
// and ServiceMonitor reach the pods they are meant for, and that the pods' volumes and ports
// are consistent.
func crossCheck(objects []object) []string {
	var problems []string
	services := map[string]*corev1.Service{}
	statefulSets := map[string]*appsv1.StatefulSet{}
	for _, o := range objects {
		switch v := o.value.(type) {
		case *corev1.Service:
			services[v.Name] = v
		case *appsv1.StatefulSet:
			statefulSets[v.Name] = v
			problems = append(problems, checkPodTemplate(o.where, &v.Spec.Template, v.Spec.VolumeClaimTemplates)...)
			if selector, err := metav1.LabelSelectorAsSelector(v.Spec.Selector); err != nil || !selector.Matches(labels.Set(v.Spec.Template.Labels)) {
				problems = append(problems, o.where+": spec.selector does not select spec.template's labels")
			}
		}
	}
	pods := func(selector labels.Selector) []*appsv1.StatefulSet {
		var matched []*appsv1.StatefulSet
		for _, s := range statefulSets {
			if selector.Matches(labels.Set(s.Spec.Template.Labels)) {
				matched = append(matched, s)
			}
		}
		return matched
	}
	for _, o := range objects {
		switch v := o.value.(type) {
		case *appsv1.StatefulSet:
			if s, ok := services[v.Spec.ServiceName]; !ok || s.Spec.ClusterIP != corev1.ClusterIPNone {
				problems = append(problems, fmt.Sprintf("%s: spec.serviceName %q is not a rendered headless Service", o.where, v.Spec.ServiceName))
			}
		case *corev1.Service:
			targets := pods(labels.SelectorFromSet(v.Spec.Selector))
			if len(v.Spec.Selector) == 0 || len(targets) == 0 {
				problems = append(problems, o.where+": spec.selector selects no rendered pods")
			}
			for _, port := range v.Spec.Ports {
				for _, s := range targets {
					if !exposes(&s.Spec.Template.Spec, port.TargetPort, port.Protocol) {
						problems = append(problems, fmt.Sprintf("%s: port %q: targetPort %s/%s is not a container port of %s", o.where, port.Name, port.TargetPort.String(), port.Protocol, s.Name))
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			if selector, err := metav1.LabelSelectorAsSelector(v.Spec.Selector); err != nil || len(pods(selector)) == 0 {
				problems = append(problems, o.where+": spec.selector selects no rendered pods")
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			if _, ok := statefulSets[ref.Name]; ref.Kind != "StatefulSet" || ref.APIVersion != "apps/v1" || !ok {
				problems = append(problems, fmt.Sprintf("%s: scaleTargetRef %s %s/%s is not a rendered StatefulSet", o.where, ref.APIVersion, ref.Kind, ref.Name))
			}
		case *networkingv1.Ingress:
			for _, rule := range v.Spec.Rules {
				if rule.HTTP == nil {
					continue
				}
				for _, path := range rule.HTTP.Paths {
					if b := path.Backend.Service; b == nil || !servicePort(services[b.Name], b.Port) {
						problems = append(problems, fmt.Sprintf("%s: path %q: backend is not a port of a rendered Service", o.where, path.Path))
					}
				}
			}
		case *serviceMonitor:
			selector, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			matched := 0
			for _, s := range services {
				if err == nil && selector.Matches(labels.Set(s.Labels)) {
					matched++
					for _, e := range v.Spec.Endpoints {
						if !servicePort(s, networkingv1.ServiceBackendPort{Name: e.Port}) {
							problems = append(problems, fmt.Sprintf("%s: endpoint port %q is not a port of Service %s", o.where, e.Port, s.Name))
						}
					}
				}
			}
			if matched == 0 {
				problems = append(problems, o.where+": spec.selector selects no rendered Service")
			}
		}
	}
	return problems
}

func servicePort(service *corev1.Service, port networkingv1.ServiceBackendPort) bool {
	if service == nil {
		return false
	}
	for _, p := range service.Spec.Ports {
		if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
			return true
		}
	}
	return false
}

func exposes(pod *corev1.PodSpec, target intstr.IntOrString, protocol corev1.Protocol) bool {
	if protocol == "" {
		protocol = corev1.ProtocolTCP
	}
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp == protocol && ((target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal)) {
				return true
			}
		}
	}
	return false
}

// checkPodTemplate: every mount has a volume, named probe ports exist, port names are valid.
func checkPodTemplate(where string, template *corev1.PodTemplateSpec, claims []corev1.PersistentVolumeClaim) []string {
	var problems []string
	problems = append(problems, checkLabels(where+": spec.template.metadata.labels", template.Labels)...)
	volumes := map[string]bool{}
	for _, v := range template.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range claims {
		volumes[c.Name] = true
	}
	containers := append(append([]corev1.Container{}, template.Spec.InitContainers...), template.Spec.Containers...)
	for _, c := range containers {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				problems = append(problems, fmt.Sprintf("%s: container %s mounts %q, which is no volume", where, c.Name, m.Name))
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
			for _, e := range validation.IsValidPortName(p.Name) {
				problems = append(problems, fmt.Sprintf("%s: container %s: port name %q: %s", where, c.Name, p.Name, e))
			}
		}
		for name, probe := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if probe != nil && probe.HTTPGet != nil && probe.HTTPGet.Port.Type == intstr.String && !ports[probe.HTTPGet.Port.StrVal] {
				problems = append(problems, fmt.Sprintf("%s: container %s: %s port %q is not a container port", where, c.Name, name, probe.HTTPGet.Port.StrVal))
			}
		}
	}
	return problems
}
