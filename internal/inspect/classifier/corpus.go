package classifier

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Row is one labelled text of the training corpus.
type Row struct {
	Text   string
	Attack bool
	Lang   string // ISO 639-1, "mixed" or "unknown"
	Kind   string
	Source string // the dataset's source field: repository@commit:path#anchor
	Repo   string // owner/name: the unit a leave-one-source-out split holds out
	File   string // the file the row came from (prompt-injection/attacks_en.jsonl, bipia/email, ...)
}

// Group is the part of Source before '#': expansions of one template share it.
func (r Row) Group() string {
	g, _, _ := strings.Cut(r.Source, "#")
	return g
}

// CorpusFiles are the prompt-injection corpus files, in the order they are read.
var CorpusFiles = []string{
	"attacks_en.jsonl", "attacks_multilingual.jsonl", "indirect_documents.jsonl",
	"benign_prompts.jsonl", "benign_documents.jsonl", "benign_multilingual.jsonl",
}

// LoadCorpus reads dir/prompt-injection (every file) and the training half of dir/bipia (each
// attack planted in a clean context, and the clean contexts), in a fixed order.
func LoadCorpus(dir string) ([]Row, error) {
	var rows []Row
	for _, name := range CorpusFiles {
		rs, err := ReadJSONL(filepath.Join(dir, "prompt-injection", name), "prompt-injection/"+name)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rs...)
	}
	bp, err := LoadBIPIA(dir, "train")
	if err != nil {
		return nil, err
	}
	return append(rows, bp...), nil
}

// ReadJSONL reads rows in the corpus format ({"text","label","lang","kind","source"} per line);
// label is "benign" or an attack label. file names the rows' origin.
func ReadJSONL(path, file string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		var r struct{ Text, Label, Lang, Kind, Source string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		repo, _, _ := strings.Cut(r.Source, "@")
		rows = append(rows, Row{Text: r.Text, Attack: r.Label != "benign", Lang: r.Lang, Kind: r.Kind, Source: r.Source, Repo: repo, File: file})
	}
	return rows, sc.Err()
}

// LoadBIPIA builds rows from one split ("train" or "test") of dir/bipia: every text and code
// attack planted into a clean context of its kind (text attacks into e-mails and tables, code
// attacks into code answers) at the start, the middle (a line boundary) or the end, in turn; and
// every distinct clean context as a benign row.
func LoadBIPIA(dir, split string) ([]Row, error) {
	ctx := map[string][]string{}
	var rows []Row
	for _, kind := range []string{"email", "table", "code"} {
		f, err := os.Open(filepath.Join(dir, "bipia", kind, split+".jsonl"))
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		row := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var r struct {
				Context json.RawMessage `json:"context"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return nil, fmt.Errorf("bipia/%s/%s: %v", kind, split, err)
			}
			var text string
			if json.Unmarshal(r.Context, &text) != nil {
				var parts []string
				if json.Unmarshal(r.Context, &parts) != nil {
					continue
				}
				text = strings.Join(parts, "\n")
			}
			text = strings.TrimSpace(text)
			if text == "" || seen[text] {
				continue
			}
			seen[text] = true
			ctx[kind] = append(ctx[kind], text)
			row++
			// Each context is its own document (not a template expansion): its own group.
			rows = append(rows, Row{Text: text, Lang: "en", Kind: "benign_context", Source: fmt.Sprintf("microsoft/BIPIA@1a2a91d:benchmark/%s/%s.jsonl:%d", kind, split, row),
				Repo: "microsoft/BIPIA", File: "bipia/" + kind})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	for _, at := range []struct{ file, kinds string }{{"text_attack_" + split + ".json", "email,table"}, {"code_attack_" + split + ".json", "code"}} {
		b, err := os.ReadFile(filepath.Join(dir, "bipia", at.file))
		if err != nil {
			return nil, err
		}
		var cats map[string][]string
		if err := json.Unmarshal(b, &cats); err != nil {
			return nil, fmt.Errorf("bipia/%s: %v", at.file, err)
		}
		names := make([]string, 0, len(cats))
		for c := range cats {
			names = append(names, c)
		}
		sort.Strings(names)
		kinds := strings.Split(at.kinds, ",")
		k := 0
		for _, c := range names {
			for _, a := range cats[c] {
				kind := kinds[k%len(kinds)]
				cs := ctx[kind]
				if len(cs) == 0 {
					continue
				}
				rows = append(rows, Row{Text: Plant(cs[(k*31)%len(cs)], a, k%3), Attack: true, Lang: "en", Kind: "indirect",
					Source: "microsoft/BIPIA@1a2a91d:benchmark/" + at.file + "#" + c, Repo: "microsoft/BIPIA", File: "bipia/" + kind})
				k++
			}
		}
	}
	return rows, nil
}

// Plant inserts attack into context at the start (where 0), the middle at a line or sentence
// boundary (1) or the end (2).
func Plant(context, attack string, where int) string {
	switch where {
	case 0:
		return attack + "\n" + context
	case 2:
		return context + "\n" + attack
	}
	mid := len(context) / 2
	if i := strings.IndexByte(context[mid:], '\n'); i >= 0 {
		mid += i + 1
	} else if i := strings.Index(context[mid:], ". "); i >= 0 {
		mid += i + 2
	} else {
		mid = len(context)
	}
	return context[:mid] + attack + "\n" + context[mid:]
}
