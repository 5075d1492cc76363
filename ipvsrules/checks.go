package ipvsrules

import (
	"math/bits"

	"github.com/ipvs-go/ipvs"
)

// ipvsadm's checks of a command's options against each other.

// genericOptCheck is ipvsadm's generic_opt_check, with the extensions.
func (st *state) genericOptCheck() *SyntaxError {
	if int(st.cmd) >= len(commandsVsOptions) || commandsVsOptions[st.cmd] == "" {
		return nil
	}
	table := commandsVsOptions[st.cmd]
	m := &optionMasks[st.cmd]
	if o := st.options & (1<<numIpvsadmOpts - 1); o&m.required != m.required || o&m.illegal != 0 || bits.OnesCount64(uint64(o&m.exclusive)) > 1 {
		if err := st.optTableCheck(table); err != nil {
			return err
		}
	}
	return st.extOptCheck()
}

// optTableCheck finds the error of the options against the command's row
// of commandsVsOptions.
func (st *state) optTableCheck(table string) *SyntaxError {
	last, count := 0, 0
	for j := range numIpvsadmOpts {
		given := st.options&(1<<j) != 0
		switch {
		case !given && table[j] == '+':
			return st.fail(st.cmdWord, "You need to supply the '%s' option for the '%s' command", optNames[j], st.cmd)
		case given && table[j] == 'x':
			return st.fail(int(st.optWord[j]), "Illegal '%s' option with the '%s' command", optNames[j], st.cmd)
		case given && table[j] == '1':
			count++
			if count == 1 {
				last = j
				continue
			}
			return st.fail(int(st.optWord[j]), "The option '%s' conflicts with the '%s' option in the '%s' command", optNames[j], optNames[last], st.cmd)
		}
	}
	return nil
}

// extOptCheck is the rest of genericOptCheck: the extensions.
func (st *state) extOptCheck() *SyntaxError {
	if st.fwd == ipvs.Local && st.cmd != AddServer && st.cmd != EditServer {
		return st.fail(int(st.optWord[7]), "Illegal 'local-node' option with the '%s' command", st.cmd)
	}
	for _, ext := range []struct {
		o     int
		kinds [2]Kind
	}{{34, [2]Kind{AddServer, EditServer}}, {35, [2]Kind{AddService, EditService}}} {
		if st.options&(1<<ext.o) != 0 && st.cmd != ext.kinds[0] && st.cmd != ext.kinds[1] {
			return st.fail(int(st.optWord[ext.o]), "Illegal '%s' option with the '%s' command", optNames[ext.o], st.cmd)
		}
	}
	if st.options.Has(OptSvcTimeout | OptPersistent) {
		return st.fail(int(st.optWord[35]), "The option 'svc-timeout' conflicts with the 'persistent' option in the '%s' command", st.cmd)
	}
	return nil
}

// tunnelOptCheck is ipvsadm's tunnel_opt_check.
func (st *state) tunnelOptCheck() *SyntaxError {
	table := tunnelVsOptions[st.tunType]
	last, count := 0, 0
	for j, k := range tunOpts {
		given := st.options&(1<<k) != 0
		switch {
		case !given && table[j] == '+':
			return st.fail(int(st.optWord[6]), "You need to supply the '%s' option for the '%s' tunnel type", optNames[k], tunNames[st.tunType])
		case given && table[j] == 'x':
			return st.fail(int(st.optWord[k]), "Illegal '%s' option with the '%s' tunnel type", optNames[k], tunNames[st.tunType])
		case given && table[j] == '1':
			count++
			if count == 1 {
				last = k
				continue
			}
			return st.fail(int(st.optWord[k]), "The option '%s' conflicts with the '%s' option in the '%s' tunnel type", optNames[k], optNames[last], tunNames[st.tunType])
		}
	}
	return nil
}
