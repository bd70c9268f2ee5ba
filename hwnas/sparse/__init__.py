"""SparseNAS (Huang, Chang, Yao 2024): proxy supernet -> early predictor -> sparse space -> sparse
training -> search-free selection. See docs/sparsenas.md."""
