package diagnose

import (
	"fmt"
	"strings"
)

// FixKind says what a fix is and who acts on it: tune applies settings, a
// person runs commands and reads advice, a developer changes the
// application. Consumers switch on it instead of reading the text.
type FixKind uint8

const (
	// FixSetting is a kernel setting netdrop tune can change and roll
	// back; Change says which, Command how by hand.
	FixSetting FixKind = iota + 1
	// FixApp is a change in the application (a socket option, a listen
	// backlog, pacing); App says which socket, which parameter, what value.
	FixApp
	// FixManual is a command that changes state, for a person to run:
	// netdrop does not run it, and NotAutomatic says why.
	FixManual
	// FixInspect is a read-only command that shows more.
	FixInspect
	// FixAdvice is prose, not a command.
	FixAdvice
)

var fixKindNames = map[FixKind]string{
	FixSetting: "setting",
	FixApp:     "application",
	FixManual:  "manual",
	FixInspect: "inspect",
	FixAdvice:  "advice",
}

func (k FixKind) String() string {
	if n, ok := fixKindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("FixKind(%d)", uint8(k))
}

// MarshalText writes the kind's name in JSON.
func (k FixKind) MarshalText() ([]byte, error) {
	if _, ok := fixKindNames[k]; !ok {
		return nil, fmt.Errorf("unknown fix kind %d", uint8(k))
	}
	return []byte(k.String()), nil
}

// UnmarshalText reads a kind's name back.
func (k *FixKind) UnmarshalText(b []byte) error {
	for kind, n := range fixKindNames {
		if n == string(b) {
			*k = kind
			return nil
		}
	}
	return fmt.Errorf("unknown fix kind %q", b)
}

// Fix is one thing to do about a finding, as data: each consumer (the text
// report, JSON, tune, the lab) renders or applies it from its parts, so a
// printed command and the change tune makes cannot disagree.
type Fix struct {
	Kind FixKind `json:"kind"`
	// Command is the shell command of a setting, manual or inspect fix,
	// runnable as printed (values are quoted for the shell). Empty for
	// application fixes and advice.
	Command string `json:"command,omitempty"`
	// Change is the setting of a FixSetting.
	Change *Change `json:"change,omitempty"`
	// App is the application change of a FixApp.
	App *AppChange `json:"app,omitempty"`
	// Text is the advice of a FixAdvice, and a person's reading of an
	// application change.
	Text string `json:"text,omitempty"`
	// Now is the current value the fix changes, as read ("" when unknown).
	Now string `json:"now,omitempty"`
	// Note says why, or what to look for; never part of the command.
	Note string `json:"note,omitempty"`
	// NotAutomatic says why netdrop does not make this change itself, in
	// words a user would accept (set on every FixManual).
	NotAutomatic string `json:"not_automatic,omitempty"`
}

// AppParam is what an application fix changes.
type AppParam uint8

const (
	// AppRcvbuf is setsockopt(SO_RCVBUF), bytes.
	AppRcvbuf AppParam = iota + 1
	// AppSndbuf is setsockopt(SO_SNDBUF), bytes.
	AppSndbuf
	// AppListenBacklog is the backlog passed to listen(), connections.
	AppListenBacklog
	// AppPacingRate is setsockopt(SO_MAX_PACING_RATE), bytes per second.
	AppPacingRate
)

var appParamNames = map[AppParam]string{
	AppRcvbuf:        "SO_RCVBUF",
	AppSndbuf:        "SO_SNDBUF",
	AppListenBacklog: "listen_backlog",
	AppPacingRate:    "SO_MAX_PACING_RATE",
}

func (p AppParam) String() string {
	if n, ok := appParamNames[p]; ok {
		return n
	}
	return fmt.Sprintf("AppParam(%d)", uint8(p))
}

// MarshalText writes the parameter's name in JSON.
func (p AppParam) MarshalText() ([]byte, error) {
	if _, ok := appParamNames[p]; !ok {
		return nil, fmt.Errorf("unknown application parameter %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads a parameter's name back.
func (p *AppParam) UnmarshalText(b []byte) error {
	for param, n := range appParamNames {
		if n == string(b) {
			*p = param
			return nil
		}
	}
	return fmt.Errorf("unknown application parameter %q", b)
}

// AppChange is a change only the application can make: which socket
// parameter, on which socket, to what value. The lab applies it to its own
// application; a person reads it as a change to make in theirs.
type AppChange struct {
	Param AppParam `json:"param"`
	// Proto is "udp" or "tcp"; Socket the local address (ip:port) of the
	// socket to change, "" when the rule could not name one (then: the
	// application's sockets of this protocol). Process names its owner
	// when sock_diag found it.
	Proto   string `json:"proto,omitempty"`
	Socket  string `json:"socket,omitempty"`
	Process string `json:"process,omitempty"`
	// Value is the proposed value (bytes, connections, bytes per second);
	// Current the value now, 0 when unknown.
	Value   uint64 `json:"value"`
	Current uint64 `json:"current,omitempty"`
	// Limit is the kernel setting that caps Value (net.core.rmem_max caps
	// SO_RCVBUF, net.core.somaxconn the listen backlog), "" when none.
	Limit string `json:"limit,omitempty"`
}

// String reads the change as a person would say it.
func (a AppChange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%d", a.Param, a.Value)
	switch {
	case a.Socket != "":
		b.WriteString(" on ")
		if a.Proto != "" {
			b.WriteString(a.Proto + " ")
		}
		b.WriteString(a.Socket)
	case a.Proto != "":
		b.WriteString(" on the application's " + a.Proto + " sockets")
	default:
		b.WriteString(" in the application")
	}
	if a.Process != "" {
		b.WriteString(" (" + a.Process + ")")
	}
	return b.String()
}

// setting is a fix tune applies. The current value shown is the change's.
func setting(c Change, note string) Fix {
	return Fix{Kind: FixSetting, Command: c.Command(), Change: &c, Now: c.Current, Note: note}
}

// appFix is a fix for the application.
func appFix(a AppChange, note string) Fix {
	f := Fix{Kind: FixApp, App: &a, Text: a.String(), Note: note}
	if a.Current != 0 {
		f.Now = fmt.Sprint(a.Current)
	}
	return f
}

// manual is a command that changes state and that netdrop leaves to a
// person, saying why.
func manual(cmd, now, note, why string) Fix {
	return Fix{Kind: FixManual, Command: cmd, Now: now, Note: note, NotAutomatic: why}
}

// inspect is a read-only command.
func inspect(cmd, note string) Fix {
	return Fix{Kind: FixInspect, Command: cmd, Note: note}
}

// advice is a fix in words.
func advice(text string) Fix {
	return Fix{Kind: FixAdvice, Text: text}
}

// withNote returns f with its note set.
func (f Fix) withNote(note string) Fix {
	f.Note = note
	return f
}

// shellQuote returns s as one shell word: as it is when it holds only
// characters no shell treats specially, in double quotes when it holds
// spaces but nothing double quotes would expand ("4096 131072 6291456"),
// else in single quotes.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain, spaced := true, true
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_-.,/:=+@%", r):
		case r == ' ':
			plain = false
		default:
			plain, spaced = false, false
		}
	}
	switch {
	case plain:
		return s
	case spaced:
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes each argument and joins them into one command line.
func shellJoin(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
