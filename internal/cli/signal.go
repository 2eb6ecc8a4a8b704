package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// interrupted is the cause of a context that a signal ended.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// NotifyContext returns a context that SIGINT (Ctrl-C) or SIGTERM cancels,
// remembering the signal so that Main exits with 128 plus its number. Only
// the first signal is caught: after it the default action is back, so a
// second Ctrl-C ends a command that is slow to stop (the lab's journal undoes
// what a killed run leaves). stop releases the signals.
func NotifyContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				cancel(interrupted{sig})
			} else {
				cancel(interrupted{syscall.SIGINT})
			}
		case <-ctx.Done():
		}
		signal.Stop(ch)
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
	}
}

// interruptedBy says whether ctx was ended by a signal, and which.
func interruptedBy(ctx context.Context) (syscall.Signal, bool) {
	var in interrupted
	if errors.As(context.Cause(ctx), &in) {
		return in.sig, true
	}
	return 0, false
}
