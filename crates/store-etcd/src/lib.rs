//! EtcdRecords and EtcdStore: records and objects on a real etcd cluster.
