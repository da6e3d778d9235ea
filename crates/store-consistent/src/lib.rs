//! Group and Mutex: CAS read-modify-write, group transactions and a lease mutex over any Backend.
