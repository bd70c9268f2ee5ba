"""Neural-network building blocks shared by supernets and static subnets."""
