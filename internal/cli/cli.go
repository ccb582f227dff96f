// Package cli holds the command-line conventions the ledger and projector
// binaries share, so that both behave alike:
//
//   - A program is a tree of commands (ledger report, ledger creds add,
//     projector serve). A group (the program itself, ledger creds) only
//     dispatches to its commands; its usage lists them.
//   - Flags come after the command and are parsed by the standard library's
//     flag package: -name and --name alike, -name=value or -name value.
//   - -h, -help, --help (or "help [command]") prints the usage on stdout and
//     exits 0.
//   - A wrong command line (an unknown command or flag, a flag value that does
//     not parse, an argument where none is taken, a required flag missing or
//     two flags that exclude each other) prints one line saying what is wrong
//     and then the usage, on stderr, and exits 2 (StatusUsage).
//   - Any other error prints one line, "<program>: <error>", on stderr and
//     exits 1 (StatusError); a program may give some errors a status of their
//     own (ledger audit's differences).
//
// Run does all the printing and ExitStatus all the mapping to exit statuses,
// so the commands only parse their flags (Call.Flags, Call.Parse) and return
// errors (Usagef for a wrong command line).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses.
const (
	StatusOK    = 0 // done, or a usage asked for with -h
	StatusError = 1 // the command ran and failed
	StatusUsage = 2 // the command line is wrong; nothing was done
)

// Command is a command of a program: a leaf with Run, or a group of
// Commands.
type Command struct {
	Name    string
	Summary string // one line: what the command does
	// Help is more text for the command's usage, printed after the flags
	// (after the list of commands for a group).
	Help string
	// Group, when set, starts a new heading in the parent's list of
	// commands; the commands after it up to the next Group are under it.
	Group string
	// Run runs the command with the arguments after its name. It parses
	// them with call.Parse before doing anything.
	Run      func(ctx context.Context, call *Call, args []string) error
	Commands []Command
}

// Find returns the subcommand called name, or nil.
func (c *Command) Find(name string) *Command {
	for i := range c.Commands {
		if c.Commands[i].Name == name {
			return &c.Commands[i]
		}
	}
	return nil
}

// Call is one run of a command: its outputs, its full name ("ledger creds
// add") and its flags.
type Call struct {
	Stdout, Stderr io.Writer
	Path           string

	cmd *Command
	fs  *flag.FlagSet
}

// Flags returns the command's flag set, made on the first call. It prints
// nothing itself: Run prints the usage and the errors.
func (c *Call) Flags() *flag.FlagSet {
	if c.fs == nil {
		c.fs = flag.NewFlagSet(c.Path, flag.ContinueOnError)
		c.fs.SetOutput(io.Discard)
		c.fs.Usage = func() {}
	}
	return c.fs
}

// Parse parses args with Flags. -h gives flag.ErrHelp, a flag error or an
// argument that is not a flag a *UsageError.
func (c *Call) Parse(args []string) error {
	fs := c.Flags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return &UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q: %s takes flags only", fs.Arg(0), c.Path)
	}
	return nil
}

// UsageError is a wrong command line: Run prints it with the usage, and the
// program exits with StatusUsage.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError: for a required flag missing, flags that
// exclude each other, a value out of its choices.
func Usagef(format string, a ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, a...)}
}

// ExitStatus maps Run's error to the process exit status: 0 for nil (and
// for a help), StatusUsage for a *UsageError, StatusError otherwise.
func ExitStatus(err error) int {
	var ue *UsageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return StatusOK
	case errors.As(err, &ue):
		return StatusUsage
	}
	return StatusError
}

// Run runs the command args name in program's tree and prints what the
// package comment says: the usage on stdout for a help (and returns nil);
// one line and the usage on stderr for a *UsageError; one line on stderr for
// another error. It returns the command's error.
func Run(ctx context.Context, program *Command, args []string, stdout, stderr io.Writer) error {
	call, err := dispatch(ctx, program, program.Name, args, stdout, stderr)
	var ue *UsageError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		call.PrintUsage(stdout)
		return nil
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", call.Path, oneLine(ue.Msg))
		call.PrintUsage(stderr)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", program.Name, err)
	}
	return err
}

// dispatch walks args down the tree to a leaf and runs it. It returns the
// call whose usage applies to the error.
func dispatch(ctx context.Context, cmd *Command, path string, args []string, stdout, stderr io.Writer) (*Call, error) {
	call := &Call{Stdout: stdout, Stderr: stderr, Path: path, cmd: cmd}
	if cmd.Run != nil {
		return call, cmd.Run(ctx, call, args)
	}
	if len(args) == 0 {
		return call, Usagef("no command given")
	}
	switch name := args[0]; name {
	case "-h", "-help", "--help":
		return call, flag.ErrHelp
	case "help":
		if len(args) == 1 {
			return call, flag.ErrHelp
		}
		// "help creds add" is "creds add -h".
		return dispatch(ctx, cmd, path, append(append([]string{}, args[1:]...), "-h"), stdout, stderr)
	default:
		sub := cmd.Find(name)
		switch {
		case sub != nil:
			return dispatch(ctx, sub, path+" "+sub.Name, args[1:], stdout, stderr)
		case strings.HasPrefix(name, "-"):
			return call, Usagef("flag provided but not defined: %s (flags go after the command: %s <command> [flags])", name, path)
		}
		return call, Usagef("unknown command %q", name)
	}
}

// PrintUsage writes the call's usage: its synopsis, summary, flags or
// commands, and help.
func (c *Call) PrintUsage(w io.Writer) {
	cmd := c.cmd
	if cmd.Run == nil {
		fmt.Fprintf(w, "usage: %s <command> [flags]\n", c.Path)
	} else {
		fmt.Fprintf(w, "usage: %s [flags]\n", c.Path)
	}
	if cmd.Summary != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.Summary)
	}
	if cmd.Run == nil {
		width := 0
		for _, s := range cmd.Commands {
			width = max(width, len(s.Name))
		}
		fmt.Fprintln(w, "\ncommands:")
		for _, s := range cmd.Commands {
			if s.Group != "" {
				fmt.Fprintf(w, "\n%s:\n", s.Group)
			}
			fmt.Fprintf(w, "  %-*s  %s\n", width, s.Name, s.Summary)
		}
		fmt.Fprintf(w, "\nRun \"%s <command> -h\" for the flags of a command.\n", c.Path)
	} else if fs := c.fs; fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			PrintDefaults(w, fs)
		}
	}
	if cmd.Help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(cmd.Help, "\n"))
	}
}

// PrintDefaults writes fs's flags as flag.PrintDefaults does, but with the
// two dashes the documentation uses (--name), and a default shown only when
// it is not empty, zero or false.
func PrintDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		usage = strings.ReplaceAll(usage, "\n", "\n        ")
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		fmt.Fprintf(w, "%s\n        %s\n", line, usage)
	})
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
