// Package packs embeds the compliance policy packs and their control mapping, so that
// `portcullis compliance report` knows each framework's controls without a checkout.
package packs

import "embed"

// FS holds the packs (*.yaml), their tests (*_test.yaml) and mapping/controls.yaml.
//
//go:embed *.yaml mapping/controls.yaml
var FS embed.FS
