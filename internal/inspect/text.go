package inspect

// textDetectors lists the text-attack detectors: prompt injection, exfiltration and tool
// poisoning (which reads tool definitions only).
func textDetectors() []Detector {
	return []Detector{newInjectionDetector(), exfilDetector{}, poisonDetector{}}
}
