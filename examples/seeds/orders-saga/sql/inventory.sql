-- The inventory: ten products, 100 units each (1000 in all: the conservation total).
CREATE DATABASE inventory;
GRANT ALL ON inventory.* TO 'app'@'%';
CREATE TABLE inventory.products (
  sku   varchar(16) PRIMARY KEY,
  stock int NOT NULL
) ENGINE = InnoDB;
INSERT INTO inventory.products (sku, stock) VALUES
  ('sku-01', 100), ('sku-02', 100), ('sku-03', 100), ('sku-04', 100), ('sku-05', 100),
  ('sku-06', 100), ('sku-07', 100), ('sku-08', 100), ('sku-09', 100), ('sku-10', 100);
