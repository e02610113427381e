package commit

import (
	"fmt"
	"strings"
	"unicode"
)

// lexer splits an instruction's arguments into words the way a Dockerfile
// does: unquoted whitespace separates words, single quotes keep everything
// literal, double quotes keep whitespace and honour \" \\ \$ escapes, a
// backslash outside quotes escapes the next character, and (when env is
// set) $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternate} are replaced
// from env.
type lexer struct {
	env    map[string]string
	expand bool
}

// words splits s into words.
func (lx lexer) words(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
			continue
		case r == '\'':
			j := indexRune(rs, i+1, '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", s)
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case r == '"':
			j, err := lx.doubleQuoted(rs, i+1, &cur)
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, s)
			}
			i = j
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
		case r == '$' && lx.expand:
			j, err := lx.variable(rs, i, &cur)
			if err != nil {
				return nil, fmt.Errorf("%w in %q", err, s)
			}
			i = j
		default:
			cur.WriteRune(r)
		}
		inWord = true
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// doubleQuoted copies a double-quoted string starting at rs[i] into cur and
// returns the index of the closing quote.
func (lx lexer) doubleQuoted(rs []rune, i int, cur *strings.Builder) (int, error) {
	for ; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '"':
			return i, nil
		case r == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$", rs[i+1]):
			i++
			cur.WriteRune(rs[i])
		case r == '$' && lx.expand:
			j, err := lx.variable(rs, i, cur)
			if err != nil {
				return 0, err
			}
			i = j
		default:
			cur.WriteRune(r)
		}
	}
	return 0, fmt.Errorf("unterminated double quote")
}

// variable expands the variable reference starting with '$' at rs[i] into
// cur and returns the index of its last rune.
func (lx lexer) variable(rs []rune, i int, cur *strings.Builder) (int, error) {
	if i+1 >= len(rs) {
		cur.WriteRune('$')
		return i, nil
	}
	if rs[i+1] != '{' {
		j := i + 1
		for j < len(rs) && isNameRune(rs[j]) {
			j++
		}
		if j == i+1 {
			cur.WriteRune('$')
			return i, nil
		}
		cur.WriteString(lx.env[string(rs[i+1:j])])
		return j - 1, nil
	}
	end := indexRune(rs, i+2, '}')
	if end < 0 {
		return 0, fmt.Errorf("unterminated ${")
	}
	body := string(rs[i+2 : end])
	name, word, op := body, "", ""
	if k := strings.Index(body, ":"); k >= 0 {
		name, op = body[:k], body[k:]
		if len(op) < 2 || (op[1] != '-' && op[1] != '+') {
			return 0, fmt.Errorf("unsupported modifier in ${%s}: use ${VAR:-default} or ${VAR:+alternate}", body)
		}
		word, op = op[2:], op[:2]
	}
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isNameRune(r) }) >= 0 {
		return 0, fmt.Errorf("bad variable name in ${%s}", body)
	}
	val, set := lx.env[name]
	switch {
	case op == ":-" && val == "":
		val = word
	case op == ":+" && set && val != "":
		val = word
	case op == ":+":
		val = ""
	}
	cur.WriteString(val)
	return end, nil
}

func isNameRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func indexRune(rs []rune, from int, r rune) int {
	for i := from; i < len(rs); i++ {
		if rs[i] == r {
			return i
		}
	}
	return -1
}

// envMap turns KEY=VALUE entries into a map (later entries win).
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
