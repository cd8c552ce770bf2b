// Command verify-ledger checks a Portcullis audit ledger WITHOUT the portcullis binary: it
// uses only the Go standard library and golang.org/x/mod/sumdb/{note,tlog}, an RFC 6962
// implementation written by other people. An auditor needs three files:
//
//	portcullis audit export     > records.jsonl     # each line: a record's exact stored bytes
//	portcullis audit checkpoint > checkpoint.txt    # the latest signed checkpoint (a signed note)
//	portcullis audit pubkey     > ledger.pub        # the ledger's public keys (better: your own copy)
//
//	go run ./examples/verify-ledger -records records.jsonl -checkpoint checkpoint.txt -pubkey ledger.pub
//
// It checks the checkpoint's Ed25519 signature, that every record's seq is its line number and
// its prev is the RFC 6962 leaf hash of the line before, and that the Merkle root of the first
// <size> lines equals the signed root.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verify-ledger:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify-ledger", flag.ContinueOnError)
	recordsPath := fs.String("records", "records.jsonl", "records exported with 'portcullis audit export'")
	cpPath := fs.String("checkpoint", "checkpoint.txt", "a signed checkpoint ('portcullis audit checkpoint')")
	keyPath := fs.String("pubkey", "ledger.pub", "trusted note verifier keys, one a line")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// 1. The checkpoint: a signed note whose text is "<origin>\n<size>\n<base64 root>\n".
	keyText, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	var verifiers []note.Verifier
	for _, line := range strings.Split(string(keyText), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return fmt.Errorf("public key %q: %w", line, err)
		}
		verifiers = append(verifiers, v)
	}
	msg, err := os.ReadFile(*cpPath)
	if err != nil {
		return err
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return errors.New("checkpoint text has fewer than three lines")
	}
	origin := lines[0]
	signedByOrigin := false
	for _, s := range n.Sigs {
		signedByOrigin = signedByOrigin || s.Name == origin
	}
	if !signedByOrigin {
		return fmt.Errorf("checkpoint origin %q is not the name of the key that signed it", origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return fmt.Errorf("checkpoint size: %w", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return fmt.Errorf("checkpoint root hash is not base64 of 32 bytes")
	}

	// 2. The records: hash each line exactly as stored; check seq and the prev chain.
	f, err := os.Open(*recordsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var stored []tlog.Hash // tlog's hash storage for the tree
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	br := bufio.NewReaderSize(f, 1<<20)
	var prev tlog.Hash
	var count int64
	for {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		var hdr struct {
			Seq  *int64  `json:"seq"`
			Prev *string `json:"prev"`
		}
		if err := json.Unmarshal(line, &hdr); err != nil || hdr.Seq == nil || hdr.Prev == nil {
			return fmt.Errorf("line %d is not a ledger record", count+1)
		}
		if *hdr.Seq != count {
			return fmt.Errorf("record on line %d has seq %d, want %d (inserted, deleted or reordered)", count+1, *hdr.Seq, count)
		}
		wantPrev := ""
		if count > 0 {
			wantPrev = hex.EncodeToString(prev[:])
		}
		if *hdr.Prev != wantPrev {
			return fmt.Errorf("record %d: prev does not match the hash of record %d", count, count-1)
		}
		hs, err := tlog.StoredHashes(count, line, reader)
		if err != nil {
			return err
		}
		stored = append(stored, hs...)
		prev = tlog.RecordHash(line) // SHA-256(0x00 || line): the RFC 6962 leaf hash
		count++
	}
	if count < size {
		return fmt.Errorf("the checkpoint signs %d records but the export has %d", size, count)
	}

	// 3. The Merkle root of the first <size> records must be the signed root.
	th, err := tlog.TreeHash(size, reader)
	if err != nil {
		return err
	}
	if !bytes.Equal(th[:], root) {
		return fmt.Errorf("the root of the first %d records does not match the signed checkpoint", size)
	}
	fmt.Fprintf(stdout, "ok: %d records, chain intact; checkpoint %s size %d root %s verified (%d records after it)\n",
		count, origin, size, lines[2], count-size)
	return nil
}
