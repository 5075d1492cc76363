package ipvsrules

import "github.com/ipvs-go/ipvs"

// ServiceOrder returns the order in which ipvsadm 1.31 lists ss, as
// indexes into ss: its sort of services (see the package documentation),
// which depends on the order of ss, so give ss in the kernel's order.
// Format sorts with it; a command that lists the table uses it too.
func ServiceOrder(ss []ipvs.Service) []int {
	order := make([]int, len(ss))
	for i := range order {
		order[i] = i
	}
	mergeSort(order, func(i, j int) int { return cmpServices(&ss[i], &ss[j]) })
	return order
}

// DestinationOrder returns the order in which ipvsadm 1.31 lists the
// destinations ds of a service, as indexes into ds.
func DestinationOrder(ds []ipvs.Destination) []int {
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	mergeSort(order, func(i, j int) int { return cmpDests(&ds[i], &ds[j]) })
	return order
}
