namespace ringflow::lab { int placeholder = 0; }
