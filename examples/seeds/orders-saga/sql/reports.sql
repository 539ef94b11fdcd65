-- The sales report: one row per order the middleware reported.
CREATE DATABASE reports;
GRANT ALL ON reports.* TO 'app'@'%';
CREATE TABLE reports.sales (
  id         bigint AUTO_INCREMENT PRIMARY KEY,
  order_id   bigint NOT NULL,
  sku        varchar(16) NOT NULL,
  qty        int NOT NULL,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE = InnoDB;
