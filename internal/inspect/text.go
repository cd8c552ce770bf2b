package inspect

// textDetectors lists the text-attack detectors: prompt injection and exfiltration.
func textDetectors() []Detector {
	return []Detector{newInjectionDetector(), exfilDetector{}}
}
