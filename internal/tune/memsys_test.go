package tune

import "fmt"

// MemSystem is an in-memory System for tests of the plan and apply logic:
// Values holds raw values by Setting.String(), ReadOnly and Fail name
// settings that refuse to be written.
type MemSystem struct {
	Values   map[string]string
	ReadOnly map[string]bool
	// Fail makes Write of these settings fail, to test rollback of a
	// half-applied plan.
	Fail map[string]bool
	// Writes records every write in order.
	Writes []string
}

// Read implements System.
func (m *MemSystem) Read(s Setting) (string, error) {
	v, ok := m.Values[s.String()]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknown, s)
	}
	return v, nil
}

// Check implements System.
func (m *MemSystem) Check(s Setting) error {
	if _, ok := m.Values[s.String()]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknown, s)
	}
	if m.ReadOnly[s.String()] {
		return fmt.Errorf("%w: %s", ErrReadOnly, s)
	}
	return nil
}

// Write implements System.
func (m *MemSystem) Write(s Setting, v string) error {
	if err := m.Check(s); err != nil {
		return err
	}
	if m.Fail[s.String()] {
		return fmt.Errorf("write %s: injected failure", s)
	}
	m.Writes = append(m.Writes, s.String()+"="+v)
	m.Values[s.String()] = v
	return nil
}
