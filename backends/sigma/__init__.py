"""SIGMA (Qin et al., HPCA 2020): bitmap operands, Benes distribution, Forwarding Adder
Network; cycles held against STONNE's SIGMA model (MK_STA_KN_STR / MK_STR_KN_STA)."""
