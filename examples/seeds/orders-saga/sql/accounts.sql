-- Run once on each MariaDB primary (mariadb-node.sh); the replica gets it through the binlog.
-- The apps log in as `app`, which holds no READ ONLY ADMIN: `read_only` on a replica refuses its
-- writes. `root` from the network is the watchdog's (STOP SLAVE, SET GLOBAL read_only).
CREATE USER 'app'@'%' IDENTIFIED BY 'app';
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER 'root'@'%' IDENTIFIED BY 'root';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
-- HAProxy's `option mysql-check` logs in as this user (no password, no privilege).
CREATE USER 'haproxy_check'@'%';
