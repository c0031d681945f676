module ringflow/bench/peers/go

go 1.19
